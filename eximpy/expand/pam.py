"""The pam expansion condition: ${if pam{user:password}{yes}{no}}.

DESCRIPTION
    Authenticates through the system's PAM library (libpam, by ctypes) with
    the service name "exim", as Exim's auth_call_pam() does: the argument is
    a colon list of the user name and the password (a literal colon in the
    password is doubled); the conversation answers an echo-off prompt with
    the password and an echo-on prompt with the user name.  After
    pam_authenticate() succeeds, pam_acct_mgmt() must succeed too.

    Result: OK (true), FAIL (false: unknown user, wrong password, expired
    account) or ERROR with PAM's message (an expansion error).

SECURITY
    PAM modules run inside this process with its privileges; the password
    is only handed to the conversation function and never logged.

SEE ALSO
    spec section "Expansion conditions" (pam).
"""
from __future__ import annotations

import ctypes
import ctypes.util

PAM_SUCCESS = 0
PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2
PAM_SILENT = 0x8000
PAM_USER_UNKNOWN = 10
PAM_AUTH_ERR = 7
PAM_ACCT_EXPIRED = 13
PAM_CONV_ERR = 19


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_CONV_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int,
                              ctypes.POINTER(ctypes.POINTER(_Message)),
                              ctypes.POINTER(ctypes.POINTER(_Response)), ctypes.c_void_p)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


_LIBS: dict[str, object] = {}      # cache: loaded libpam / libc


def _libs():
    if not _LIBS:
        pam = ctypes.CDLL(ctypes.util.find_library("pam") or "libpam.so.0")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.POINTER(_Conv), ctypes.POINTER(ctypes.c_void_p)]
        pam.pam_authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_acct_mgmt.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_strerror.restype = ctypes.c_char_p
        libc.calloc.restype = ctypes.c_void_p
        libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        _LIBS["pam"], _LIBS["libc"] = pam, libc
    return _LIBS["pam"], _LIBS["libc"]


def authenticate(arg: str) -> tuple[str, str | None]:
    """("OK" | "FAIL" | "ERROR", message)."""
    from eximpy.expand.lists import iter_list
    from eximpy.expand.operators import to_bytes
    items = list(iter_list(arg, ":"))
    user = to_bytes(items[0]) if items else b""
    password = to_bytes(items[1]) if len(items) > 1 else b""
    try:
        pam, libc = _libs()
    except OSError as e:
        return "ERROR", f"PAM library not available: {e}"

    def conv(n, msgs, resp, _data):
        arr = libc.calloc(n, ctypes.sizeof(_Response))
        if not arr:
            return PAM_CONV_ERR
        out = ctypes.cast(arr, ctypes.POINTER(_Response))
        for i in range(n):
            style = msgs[i].contents.msg_style
            if style == PAM_PROMPT_ECHO_OFF:
                out[i].resp = libc.strdup(password)
            elif style == PAM_PROMPT_ECHO_ON:
                out[i].resp = libc.strdup(user)
            else:
                out[i].resp = None
            out[i].resp_retcode = 0
        resp[0] = out
        return PAM_SUCCESS

    cb = _CONV_FUNC(conv)
    c = _Conv(cb, None)
    handle = ctypes.c_void_p()
    rc = pam.pam_start(b"exim", user, ctypes.byref(c), ctypes.byref(handle))
    if rc == PAM_SUCCESS:
        rc = pam.pam_authenticate(handle, PAM_SILENT)
        if rc == PAM_SUCCESS:
            rc = pam.pam_acct_mgmt(handle, PAM_SILENT)
    msg = None
    if rc != PAM_SUCCESS:
        m = pam.pam_strerror(handle, rc)
        msg = m.decode("utf-8", "surrogateescape") if m else f"PAM error {rc}"
    pam.pam_end(handle, rc)
    if rc == PAM_SUCCESS:
        return "OK", None
    if rc in (PAM_USER_UNKNOWN, PAM_AUTH_ERR, PAM_ACCT_EXPIRED):
        return "FAIL", msg
    return "ERROR", msg
