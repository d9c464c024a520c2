"""flashgen's generator: kernels.yaml -> typed catalog -> generated/*.cu -> ninja build.

Data flows one way: spec (parse + validate) -> select -> render -> emit -> ninja.
"""
