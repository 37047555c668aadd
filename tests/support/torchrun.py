#!/usr/bin/python3
"""torchrun for Debian 12's python3-torch (1.13) under its Python 3.11.

There every plain `torchrun` fails before it starts a process (AttributeError: 'NoneType' object
has no attribute 'get', in elastic/multiprocessing/api.py to_map): Std.from_str("0") finds no
member, because Python 3.11 no longer lists an IntFlag's zero and multi-bit members when it is
iterated. Torch 2.x fixed it upstream. This replaces that one function and runs the real
torch.distributed.run, so the tests launch a genuine torchrun: pool:torchrun(script,
{launcher = "/usr/bin/python3 tests/support/torchrun.py"}).
"""
import re
import sys

from torch.distributed.elastic.multiprocessing import api
from torch.distributed.run import main


def from_str(cls, vm):
    if re.match(api._VALUE_REGEX, vm):
        return cls(int(vm))
    if re.match(api._MAPPING_REGEX, vm):
        return {int(i): cls(int(v)) for i, v in (m.split(":") for m in vm.split(","))}
    raise ValueError(f"{vm} does not match: <{api._VALUE_REGEX}> or <{api._MAPPING_REGEX}>")


api.Std.from_str = classmethod(from_str)

if __name__ == "__main__":
    sys.exit(main())
