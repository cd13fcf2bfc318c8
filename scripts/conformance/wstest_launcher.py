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
# - `--list-cases` prints every case id, one per line, and exits.
import os
import site
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_sitedir = os.path.join(_here, 'lib', 'python2.7', 'site-packages')
_before = list(sys.path)
site.addsitedir(_sitedir)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

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

from autobahntestsuite.wstest import run  # noqa: E402

sys.argv[0] = 'wstest'
sys.exit(run())
