#!/usr/bin/env python3
"""Byte-level checks of the proxies started by start.sh (run by verify.sh).

Pins down exactly what each server answers, so the Rust client tests can
assert on the same bytes. Usage: probe.py ECHO_PORT (proxies.env in the
environment; ECHO_PORT serves /hello.txt whose body is $HELLO_BODY).
Exit 0 when every check matched, 1 otherwise.
"""
import base64
import os
import socket
import sys

ECHO_PORT = int(sys.argv[1])
BODY = os.environ["HELLO_BODY"].encode()
USER = os.environ["ELO_PROXY_USER"].encode()
PASS = os.environ["ELO_PROXY_PASS"].encode()
failed = 0


def addr(var):
    host, port = os.environ[var].rsplit(":", 1)
    return host, int(port)


def check(desc, got, want):
    global failed
    ok = got == want
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {desc}: {got!r}" + ("" if ok else f" (want {want!r})"))


def connect(var):
    return socket.create_connection(addr(var), timeout=5)


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return buf + b"<EOF>"
        buf += chunk
    return buf


def read_head(s):
    """Read an HTTP response head (through the blank line)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf.decode("latin1")


def closed(s):
    """True when the server closes the connection (after any body)."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False


def tunnel_get(s, host="127.0.0.1"):
    """Speak HTTP to the echo server through an established tunnel."""
    s.sendall(f"GET /hello.txt HTTP/1.0\r\nHost: {host}:{ECHO_PORT}\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[-1]


def http_connect(var, target, auth=None):
    s = connect(var)
    req = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if auth is not None:
        req += f"Proxy-Authorization: {auth}\r\n"
    s.sendall((req + "\r\n").encode())
    head = read_head(s)
    lines = head.split("\r\n")
    return s, lines[0], [line for line in lines[1:] if line]


def basic(user, password):
    return "Basic " + base64.b64encode(user + b":" + password).decode()


# ---- tinyproxy, no auth -------------------------------------------------------
s, status, _ = http_connect("ELO_HTTP_PROXY", f"127.0.0.1:{ECHO_PORT}")
check("http CONNECT 127.0.0.1 status", status, "HTTP/1.0 200 Connection established")
check("http CONNECT 127.0.0.1 tunnel body", tunnel_get(s), BODY)
s, status, _ = http_connect("ELO_HTTP_PROXY", f"localhost:{ECHO_PORT}")
check("http CONNECT localhost status", status, "HTTP/1.0 200 Connection established")
check("http CONNECT localhost tunnel body", tunnel_get(s, "localhost"), BODY)
s, status, _ = http_connect("ELO_HTTP_PROXY", "127.0.0.1:1")
check("http CONNECT closed port status", status, "HTTP/1.1 500 Unable to connect")
s.close()

# ---- tinyproxy, BasicAuth -----------------------------------------------------
target = f"127.0.0.1:{ECHO_PORT}"
s, status, headers = http_connect("ELO_HTTP_PROXY_AUTH", target)
check("http-auth CONNECT without credentials", status, "HTTP/1.0 407 Proxy Authentication Required")
check("  Proxy-Authenticate header", [h for h in headers if h.lower().startswith("proxy-authenticate")],
      ['Proxy-Authenticate: Basic realm="Tinyproxy"'])
check("  connection closed after the 407", closed(s), True)
s, status, headers = http_connect("ELO_HTTP_PROXY_AUTH", target, basic(USER, b"wrong"))
check("http-auth CONNECT wrong password", status, "HTTP/1.0 401 Unauthorized")
check("  WWW-Authenticate header", [h for h in headers if h.lower().startswith("www-authenticate")],
      ['WWW-Authenticate: Basic realm="Tinyproxy"'])
check("  connection closed after the 401", closed(s), True)
s, status, _ = http_connect("ELO_HTTP_PROXY_AUTH", target, "Bearer abc")
check("http-auth CONNECT non-Basic scheme", status, "HTTP/1.0 401 Unauthorized")
s.close()
s, status, _ = http_connect("ELO_HTTP_PROXY_AUTH", target, basic(USER, PASS))
check("http-auth CONNECT good credentials", status, "HTTP/1.0 200 Connection established")
check("http-auth tunnel body", tunnel_get(s), BODY)
s, status, _ = http_connect("ELO_HTTP_PROXY_AUTH", target, basic(USER, PASS).replace("Basic", "basic"))
check("http-auth CONNECT lower-case 'basic' scheme", status, "HTTP/1.0 200 Connection established")
s.close()


# ---- SOCKS5 helpers -------------------------------------------------------------
def socks_greet(var, methods):
    s = connect(var)
    s.sendall(bytes([5, len(methods), *methods]))
    return s, read_exact(s, 2)


def socks_userpass(s, user, password):
    s.sendall(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
    return read_exact(s, 2)


def socks_request(s, atyp, address, port):
    if atyp == 3:
        address = bytes([len(address)]) + address
    s.sendall(bytes([5, 1, 0, atyp]) + address + port.to_bytes(2, "big"))
    head = read_exact(s, 4)
    if head.endswith(b"<EOF>"):
        return head
    rest = {1: 4, 4: 16}.get(head[3])
    rest = rest + 2 if rest else read_exact(s, 1)[0] + 2
    read_exact(s, rest)  # BND.ADDR + BND.PORT: not asserted (ephemeral)
    return head[:2]  # VER, REP


LOCALHOST = (3, b"localhost")
IPV4 = (1, bytes([127, 0, 0, 1]))

# ---- dante, method "none" ---------------------------------------------------------
s, rep = socks_greet("ELO_SOCKS5_PROXY", [0])
check("socks5 methods [00] -> choice", rep, b"\x05\x00")
check("socks5 CONNECT domain 'localhost'", socks_request(s, *LOCALHOST, ECHO_PORT), b"\x05\x00")
check("socks5 tunnel body", tunnel_get(s, "localhost"), BODY)
s, rep = socks_greet("ELO_SOCKS5_PROXY", [0])
check("socks5 CONNECT 127.0.0.1", socks_request(s, *IPV4, ECHO_PORT), b"\x05\x00")
check("socks5 tunnel body", tunnel_get(s), BODY)
s, rep = socks_greet("ELO_SOCKS5_PROXY", [0])
check("socks5 CONNECT closed port -> REP 05 refused", socks_request(s, *IPV4, 1), b"\x05\x05")
s.close()
s, rep = socks_greet("ELO_SOCKS5_PROXY", [0])
blocked = socket.inet_aton(os.environ["ELO_SOCKS5_BLOCKED_HOST"])
check("socks5 CONNECT blocked host -> REP 02 not allowed", socks_request(s, 1, blocked, ECHO_PORT), b"\x05\x02")
s.close()
s, rep = socks_greet("ELO_SOCKS5_PROXY", [2])
check("socks5 methods [02] only -> no acceptable", rep, b"\x05\xff")
check("  connection closed after 05 FF", closed(s), True)
s, rep = socks_greet("ELO_SOCKS5_PROXY", [2, 0])
check("socks5 methods [02,00] -> choice", rep, b"\x05\x00")
s.close()

# ---- microsocks, username/password ---------------------------------------------------
s, rep = socks_greet("ELO_SOCKS5_PROXY_AUTH", [0])
check("socks5-auth methods [00] only -> no acceptable", rep, b"\x05\xff")
check("  connection closed after 05 FF", closed(s), True)
s, rep = socks_greet("ELO_SOCKS5_PROXY_AUTH", [0, 2])
check("socks5-auth methods [00,02] -> choice", rep, b"\x05\x02")
check("socks5-auth wrong password -> RFC 1929 status", socks_userpass(s, USER, b"wrong"), b"\x01\x02")
check("  connection closed after failed auth", closed(s), True)
s, rep = socks_greet("ELO_SOCKS5_PROXY_AUTH", [2])
check("socks5-auth methods [02] -> choice", rep, b"\x05\x02")
check("socks5-auth good password", socks_userpass(s, USER, PASS), b"\x01\x00")
check("socks5-auth CONNECT domain 'localhost'", socks_request(s, *LOCALHOST, ECHO_PORT), b"\x05\x00")
check("socks5-auth tunnel body", tunnel_get(s, "localhost"), BODY)
s, rep = socks_greet("ELO_SOCKS5_PROXY_AUTH", [2])
socks_userpass(s, USER, PASS)
check("socks5-auth CONNECT closed port -> REP 05 refused", socks_request(s, *IPV4, 1), b"\x05\x05")
s.close()

print(f"probe: {'all byte-level checks OK' if not failed else f'{failed} check(s) FAILED'}")
sys.exit(1 if failed else 0)
