"""The one compiled piece: the fast extractor's block walk (pipelines/fast_extract/_walk.c).

Everything else is declared in pyproject.toml. The walk reads libxml2's node structs, whose
headers ship inside lxml's wheel (``lxml.get_include()``), so the build needs lxml and a C
compiler, nothing else.
"""

import lxml
from setuptools import Extension, setup

setup(ext_modules=[Extension("pipelines.fast_extract._walk", ["pipelines/fast_extract/_walk.c"],
                             include_dirs=lxml.get_include(), extra_compile_args=["-O2"])])
