from setuptools import setup

setup(
    name="Zope.Thing",
    version="2.0rc1",
    description="Dotted, mixed-case name and a pre-release",
    packages=["zope_thing"],
    python_requires=">=3.7, <4",
)
