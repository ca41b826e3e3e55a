"""eximpy.smtp: the SMTP server side (receiving), sans-IO first.

SUMMARY
    server.py      Session: the per-connection state machine (commands,
                   replies, limits, ACL hooks, BDAT, STARTTLS and AUTH
                   states); ReceivedMessage; MessageSink protocol
    dataread.py    DataReader: DATA/BDAT data with Exim 4.96's line rules
    reply.py       Reply formatting, message codes, escaping of client bytes
    address.py     RFC 822/821 address extraction (parse_extract_address),
                   header address qualification (rewrite_one_header)
    accept.py      SpoolSink/TestSink: build the received message (Received:,
                   fix-ups), spool it durably, log "<="
    auth.py        server AUTH exchanges: plaintext, cram_md5, dovecot
    tls.py         ssl contexts for STARTTLS / TLS-on-connect, TlsInfo
    mime.py        the MIME ACL's walk over a message's parts
    connection.py  the only I/O: serve_socket() for a connected socket,
                   serve_stream() for -bs, prepare() before forking

SEE ALSO
    spec chapters "SMTP processing", "Message processing", "Encrypted SMTP
    connections", "SMTP authentication"; DESIGN.md sections 5-7.
"""
