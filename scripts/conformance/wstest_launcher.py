# Python 2.7 launcher for wstest (autobahntestsuite) installed with
# `pip install --prefix`. install.sh copies this file next to the prefix's
# lib/ folder ($CONFORMANCE_HOME/wstest/) and writes a bin/wstest wrapper that
# runs it with `python2.7 -E -s`.
#
# - site.addsitedir() processes the prefix's .pth files (zope.interface is a
#   namespace package that needs its nspkg.pth); the prefix goes to the front
#   of sys.path so it wins over anything in the interpreter's own site-packages.
# - wstest binds its listening socket to every interface; we bind it to
#   $WSTEST_BIND (default 127.0.0.1) instead. WSTEST_BIND= (empty) restores
#   the original behaviour.
# - the 12.*/13.* cases hash messages with OpenSSL's SHA-1 instead of the interpreter's
#   slow builtin one (see _openssl_sha1); WSTEST_OPENSSL_SHA1=0 keeps the builtin.
# - `--list-cases` prints every case id, one per line, and exits.
import os
import site
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_sitedir = os.path.join(_here, 'lib', 'python2.7', 'site-packages')
_before = list(sys.path)
site.addsitedir(_sitedir)
sys.path[:] = [p for p in sys.path if p not in _before] + _before


def _openssl_sha1():
    """hashlib.sha1 on OpenSSL, or None.

    pyenv's 2.7.18 builds without _hashlib (it needs OpenSSL 1.1; Debian 12 has 3.0), so
    hashlib.sha1 is the builtin _sha at ~175 MB/s. Cases 12.* and 13.* hash every message
    they send and every echo (a fifth of wstest's time in the text cases). cryptography,
    pinned for wstest's TLS, carries OpenSSL 1.1.1: same digests, 6x faster. Only the case
    module's hashlib is replaced; the case code itself is untouched.
    """
    try:
        import _sha
        import binascii
        import warnings
        warnings.filterwarnings('ignore', message='Python 2 is no longer supported')
        from cryptography.hazmat.backends.openssl.backend import backend
        from cryptography.hazmat.primitives import hashes
    except Exception:  # noqa: BLE001 - any import problem: keep the builtin
        return None

    class Sha1(object):
        name = 'sha1'
        digest_size = 20
        block_size = 64

        def __init__(self, data=None):
            self._ctx = hashes.Hash(hashes.SHA1(), backend)
            if data is not None:
                self.update(data)

        def update(self, data):
            if not isinstance(data, bytes):
                data = bytes(data)  # unicode: what _sha does (ASCII or UnicodeEncodeError)
            self._ctx.update(data)

        def copy(self):
            other = Sha1.__new__(Sha1)
            other._ctx = self._ctx.copy()
            return other

        def digest(self):
            return self._ctx.copy().finalize()

        def hexdigest(self):
            return binascii.hexlify(self.digest())

    for vector in (b'', b'abc', b'\x00\xff' * 40000):
        if Sha1(vector).digest() != _sha.new(vector).digest():
            return None
    return Sha1


class _HashlibWithOpenSslSha1(object):
    def __init__(self, sha1):
        import hashlib
        self.__dict__.update(hashlib.__dict__)
        self.sha1 = sha1


def _speed_up_case_hashing():
    sha1 = _openssl_sha1()
    if sha1 is None:
        sys.stderr.write('wstest_launcher: OpenSSL SHA-1 unavailable, cases hash with _sha\n')
        return
    import autobahntestsuite.case.case12_x_x as cases12
    cases12.hashlib = _HashlibWithOpenSslSha1(sha1)


_bind = os.environ.get('WSTEST_BIND', '127.0.0.1')
if _bind:
    import autobahn.twisted.websocket as _abtw
    _listen_ws = _abtw.listenWS

    def _listen_ws_bound(factory, contextFactory=None, backlog=50, interface=''):
        return _listen_ws(factory, contextFactory, backlog, interface or _bind)

    _abtw.listenWS = _listen_ws_bound

if sys.argv[1:] == ['--list-cases']:
    from autobahntestsuite.case import Cases, CaseBasename
    for _c in Cases:
        print('.'.join(_c.__name__[len(CaseBasename):].split('_')))
    sys.exit(0)

if os.environ.get('WSTEST_OPENSSL_SHA1', '1') != '0':
    _speed_up_case_hashing()

from autobahntestsuite.wstest import run  # noqa: E402

sys.argv[0] = 'wstest'
sys.exit(run())
