"""Access control lists (spec chapter 44 "Access control lists").

    parse.py       ACL text -> AclStatement (verbs, conditions, modifiers)
    runner.py      the session's interface: AclRunner.check(), AclEnv,
                   AclResult, WHERE_CODES; MinimalAclRunner
    engine.py      the full engine: make_runner(config, log=, trace=,
                   host_checking=, callouts_in_bh=) -> AclEngine
    conditions.py  conditions and modifiers (acl_check_condition)
    controls.py    control = ...
    lists.py       list matching with Exim's -bh trace and caching
    verify.py      verify = ... (routing in verify mode, callouts)
    callout.py     the callout SMTP client and callout cache
    ratelimit.py   ratelimit and seen (LMDB hints, eximpy.hintsdb)
    dnslists.py    dnslists
    headers.py     header_syntax, header_sender, not_blind ...
    spf.py         spf / spf_guess (needs pyspf)
"""
