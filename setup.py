"""The one compiled piece: the fast extractor's block walk (pipelines/fast_extract/_walk.c).

Everything else is declared in pyproject.toml. The walk reads libxml2's node structs, whose
headers ship inside lxml's wheel (``lxml.get_include()``), so the build needs lxml and a C
compiler, nothing else. It is a top-level module, ``cptcorpus_walk``, not one inside ``pipelines``:
a Ray job's working directory (``make submit``) carries the source tree without build products,
and its ``pipelines`` shadows the installed one on every worker; a top-level name is still found
where the package was installed.
"""

import lxml
from setuptools import Extension, setup

setup(ext_modules=[Extension("cptcorpus_walk", ["pipelines/fast_extract/_walk.c"],
                             include_dirs=lxml.get_include(), extra_compile_args=["-O2"])])
