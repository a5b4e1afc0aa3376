#!/usr/bin/python3
"""The proxy SDK from Python ctypes, as a redirector written in Python uses it.

    sdk_ctypes.py LIBRARY ACCEPTED_FD

ACCEPTED_FD is an accepted socket of a redirected connection, inherited from
the caller. Queries its records and context (sizing the buffers the way
WSAIoctl callers do: ask with no buffer, get EINVAL and the size), decodes
the original destination, then does what a proxy does next: SETs the records
on a new socket and connects it to the original destination.

Prints, one per line:
    DEST <addr>:<port> RECORDS <bytes> CONTEXT <bytes>
    PID <pid of the application> UID <uid> COMM <comm>
    SET <bytes consumed>
    NEW_SOCKET_QUERY <errno name>
    CONNECTED <errno name or 0>
Exits 1 with a message on stderr when a call fails unexpectedly.
"""
import ctypes
import errno
import os
import socket
import sys

SIO_QUERY_RECORDS = 0x980000DC
SIO_QUERY_CONTEXT = 0x980000DD
SIO_SET_RECORDS = 0x980000DE


class SdkError(Exception):
    def __init__(self, what, err):
        super().__init__(f"{what}: {errno.errorcode.get(err, err)} ({os.strerror(err)})")
        self.errno = err


def load(path):
    lib = ctypes.CDLL(path, use_errno=True)
    lib.redirect_ioctl.argtypes = [
        ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
        ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.redirect_ioctl.restype = ctypes.c_int
    lib.redirect_context_destination.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
    ]
    lib.redirect_context_destination.restype = ctypes.c_int
    lib.redirect_context_pid.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    lib.redirect_context_uid.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint32)]
    lib.redirect_context_comm.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return lib


def ioctl(lib, fd, code, data=None, out_size=0):
    """redirect_ioctl; returns (rc, errno, bytes_returned, output bytes)."""
    inbuf = ctypes.create_string_buffer(data, len(data)) if data is not None else None
    outbuf = ctypes.create_string_buffer(out_size) if out_size else None
    n = ctypes.c_size_t(0)
    ctypes.set_errno(0)
    rc = lib.redirect_ioctl(fd, code, inbuf, len(data) if data is not None else 0, outbuf, out_size,
                            ctypes.byref(n), None, None)
    err = ctypes.get_errno() if rc != 0 else 0
    return rc, err, n.value, outbuf.raw[:n.value] if rc == 0 and outbuf else b""


def query(lib, fd, code):
    # First call without a buffer: EINVAL and the required size, as with WSAIoctl.
    rc, err, need, _ = ioctl(lib, fd, code)
    if rc != -1 or err != errno.EINVAL or need == 0:
        raise SdkError(f"size query of {code:#x} gave rc={rc} bytes={need}", err or errno.EPROTO)
    rc, err, n, blob = ioctl(lib, fd, code, out_size=need)
    if rc != 0 or n != need:
        raise SdkError(f"query {code:#x} gave rc={rc} bytes={n}", err or errno.EPROTO)
    return blob


def destination(lib, context):
    storage = ctypes.create_string_buffer(128)  # struct sockaddr_storage
    length = ctypes.c_uint32(0)
    if lib.redirect_context_destination(context, len(context), storage, ctypes.byref(length)) != 0:
        raise SdkError("redirect_context_destination", ctypes.get_errno())
    raw = storage.raw[:length.value]
    family = int.from_bytes(raw[0:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return family, socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return family, socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


def main():
    lib = load(sys.argv[1])
    fd = int(sys.argv[2])
    records = query(lib, fd, SIO_QUERY_RECORDS)
    context = query(lib, fd, SIO_QUERY_CONTEXT)
    family, addr, port = destination(lib, context)
    text = f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"
    print(f"DEST {text} RECORDS {len(records)} CONTEXT {len(context)}")

    pid, uid, comm = ctypes.c_int(0), ctypes.c_uint32(0), ctypes.create_string_buffer(16)
    if (lib.redirect_context_pid(context, len(context), ctypes.byref(pid)) != 0
            or lib.redirect_context_uid(context, len(context), ctypes.byref(uid)) != 0
            or lib.redirect_context_comm(context, len(context), comm, 16) != 0):
        raise SdkError("redirect_context_pid/uid/comm", ctypes.get_errno())
    print(f"PID {pid.value} UID {uid.value} COMM {comm.value.decode()}")

    # The proxy's outbound socket: records SET before connect().
    with socket.socket(family, socket.SOCK_STREAM) as out:
        rc, err, consumed, _ = ioctl(lib, out.fileno(), SIO_SET_RECORDS, records)
        if rc != 0:
            raise SdkError("SET records", err)
        print(f"SET {consumed}")
        rc, err, _, _ = ioctl(lib, out.fileno(), SIO_QUERY_RECORDS, out_size=256)
        print(f"NEW_SOCKET_QUERY {errno.errorcode.get(err, err) if rc else 'OK'}")
        out.settimeout(5)
        result = out.connect_ex((addr, port))
        print(f"CONNECTED {errno.errorcode.get(result, result) if result else 0}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except SdkError as e:
        print(f"sdk_ctypes.py: {e}", file=sys.stderr)
        sys.exit(1)
