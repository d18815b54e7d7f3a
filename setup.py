# conf/ lives at the top level of the repository (one folder per config group) and ships
# inside the wheel as the data package iclx.conf; pyproject.toml cannot express that mapping
# together with package discovery, so it is done here.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["iclx", "iclx.*"]) + ["iclx.conf"],
    package_dir={"iclx.conf": "conf"},
)
