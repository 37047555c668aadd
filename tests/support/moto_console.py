#!/usr/bin/env python3
"""moto's server, whose GetConsoleOutput answers what a real instance's console would say.

moto answers GetConsoleOutput with one fixed kernel log for every instance. The local cloud
(local_cloud.py) makes a real host for each running instance; it writes the console text of that
host (cloud-init's "-----BEGIN SSH HOST KEY KEYS-----" block with the host's real public keys) to
CONSOLE_DIR/<instance id>, and this server answers with that file when there is one.
Usage: moto_console.py CONSOLE_DIR [moto.server arguments...]
"""
import os
import sys

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.responses import general
from moto.ec2.utils import Base64EncodedString
from moto.server import main

CONSOLE_DIR = sys.argv[1]
_moto_answer = general.General.get_console_output


def get_console_output(self):
    instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
    path = os.path.join(CONSOLE_DIR, os.path.basename(instance.id))
    if not os.path.exists(path):
        return _moto_answer(self)
    with open(path) as f:
        text = f.read()
    return ActionResult({"InstanceId": instance.id, "Timestamp": utcnow(),
                         "Output": Base64EncodedString.from_raw_string(text)})


general.General.get_console_output = get_console_output

if __name__ == "__main__":
    main(sys.argv[2:])
