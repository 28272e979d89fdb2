"""A stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in the
virtual environments of its sanity tests. ansible-test fetches that script from a host
outside the package registries, which CI and the developers' machines cannot reach;
scripts/ansible-checks.sh puts this file where ansible-test caches the download
(~/.ansible/test/cache/get_pip_<version>.py), so the download is skipped.

It does what get-pip.py does with the same arguments (pip install options and
requirements such as `pip==24.2`): pip from the interpreter's own ensurepip, then
`pip install` of what was asked, from the package index pip is configured for.
"""

import subprocess
import sys

# get-pip.py's own options, which pip install does not know
OWN = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in OWN]
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
