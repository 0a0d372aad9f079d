#!/usr/bin/env python3
"""Dumps the first seccomp filter of a running process as JSON [[code, jt, jf, k], ...].

Used to record testdata/runc-*.json: run a container under runc whose config.json carries the
OCI seccomp section from `docker_profile_to_oci(default_docker_profile(), <Docker's default
caps>)` (process: `sleep 1000`), then, as root: python3 gen/dump_filter.py <pid> > out.json
Needs PTRACE_SECCOMP_GET_FILTER (CONFIG_CHECKPOINT_RESTORE) and CAP_SYS_ADMIN.
"""
import ctypes
import json
import os
import struct
import sys

PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

pid = int(sys.argv[1])
if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
    sys.exit(f"ptrace attach: errno {ctypes.get_errno()}")
os.waitpid(pid, 0)
try:
    n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, None)
    if n < 0:
        sys.exit(f"PTRACE_SECCOMP_GET_FILTER: errno {ctypes.get_errno()}")
    buf = ctypes.create_string_buffer(8 * n)
    libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, buf)
    prog = [list(struct.unpack("<HBBI", buf.raw[i * 8:i * 8 + 8])) for i in range(n)]
finally:
    libc.ptrace(PTRACE_DETACH, pid, None, None)
json.dump(prog, sys.stdout)
