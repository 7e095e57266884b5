"""The one build step pyproject.toml cannot declare without a warning: the optional C extension.

``magpie.protocol._cbc`` is the native twin of the protocol's AES-CBC session
(``src/magpie/protocol/_cbc.c``, linked against OpenSSL's libcrypto). It is optional: where it
cannot be built (no compiler, no OpenSSL headers) the build goes on and
``magpie.protocol.crypto`` uses its pure-Python reference. ``-g0``: no debug paths in the
binary, so a wheel built from the sdist equals one built from the tree.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "magpie.protocol._cbc",
            sources=["src/magpie/protocol/_cbc.c"],
            libraries=["crypto"],
            extra_compile_args=["-g0"],
            optional=True,
        )
    ]
)
