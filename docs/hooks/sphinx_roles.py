"""mkdocs hook: drop the Sphinx role prefix (``:func:``, ``:class:``...) that docstrings keep.

The docstrings use Sphinx roles, which mkdocstrings renders literally as ":func:" before the
code span; the name itself is what the reader needs.
"""

import re

_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc):(?=<code>)")


def on_page_content(html, **kwargs):
    return _ROLE.sub("", html)
