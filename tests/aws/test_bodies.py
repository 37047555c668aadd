#!/usr/bin/env python3
"""botocore as an oracle for the EC2 Query bodies sky.aws sends.

tests/aws/ec2_bodies.lua prints the bodies skyhost builds; this script serialises the same
requests, written as boto3 users write them, with botocore's own EC2 serializer and model, and
compares parameter by parameter. It also checks that skyhost percent-encodes as AWS expects
(RFC 3986 unreserved characters only). Usage: test_bodies.py SKYHOST REPO_ROOT
"""
import datetime
import subprocess
import sys
from urllib.parse import parse_qsl, quote

try:
    import botocore.session
    from botocore.serialize import create_serializer
except ImportError:
    sys.exit("test_bodies.py: botocore is not importable by %s; install python3-botocore or boto3" % sys.executable)

TAG = [{"Key": "skyhost-pool", "Value": "pool-7"}]
RUN = dict(ImageId="ami-0abc", KeyName="skyhost-pool-7", InstanceInitiatedShutdownBehavior="terminate",
           TagSpecifications=[{"ResourceType": "instance", "Tags": TAG + [{"Key": "Name", "Value": "skyhost-pool-7"}]}])
EXPECTED = [
    ("RunInstances", dict(RUN, InstanceType="g4dn.xlarge", MinCount=2, MaxCount=2,
                          Placement={"AvailabilityZone": "us-east-1a"}, SecurityGroupIds=["sg-0123"])),
    ("RunInstances", dict(RUN, InstanceType="p3.2xlarge", MinCount=3, MaxCount=3,
                          InstanceMarketOptions={"MarketType": "spot"},
                          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": "subnet-9", "Groups": ["sg-0123"],
                                              "AssociatePublicIpAddress": False}],
                          BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                                "Ebs": {"VolumeSize": 120, "DeleteOnTermination": True}}],
                          IamInstanceProfile={"Name": "skyhost-node"})),
    ("RunInstances", dict(RUN, InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
                          InstanceMarketOptions={"MarketType": "spot"},
                          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": "subnet-9", "Groups": ["sg-0123"],
                                              "AssociatePublicIpAddress": True}])),
    ("DescribeInstances", dict(Filters=[{"Name": "tag:skyhost-pool", "Values": ["pool-7"]}])),
    ("DescribeInstances", dict(InstanceIds=["i-1"])),
    ("TerminateInstances", dict(InstanceIds=["i-1", "i-2"])),
    ("ImportKeyPair", dict(KeyName="skyhost-pool-7", PublicKeyMaterial=b"ssh-ed25519 AAAA x",
                           TagSpecifications=[{"ResourceType": "key-pair", "Tags": TAG}])),
    ("AuthorizeSecurityGroupIngress", dict(GroupId="sg-0123", IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.213.0.1/32"}]}])),
    ("DescribeImages", dict(Owners=["099720109477"], Filters=[
        {"Name": "name", "Values": ["ubuntu/images/hvm-ssd*/ubuntu-*-amd64-server-*"]},
        {"Name": "architecture", "Values": ["x86_64"]}])),
    ("DeleteSecurityGroup", dict(GroupId="sg-0123")),
    ("DescribeSpotPriceHistory", dict(InstanceTypes=["g4dn.xlarge", "p3.2xlarge"],
                                      ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                                      StartTime=datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc))),
    ("GetConsoleOutput", dict(InstanceId="i-1")),
]


def main():
    skyhost, root = sys.argv[1], sys.argv[2]
    out = subprocess.run([skyhost, "tests/aws/ec2_bodies.lua"], cwd=root, capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        sys.exit("ec2_bodies.lua failed:\n" + out.stderr)
    lines = [l.split("\t", 1) for l in out.stdout.splitlines()]
    assert len(lines) == len(EXPECTED), "%d bodies from skyhost, %d expected" % (len(lines), len(EXPECTED))
    model = botocore.session.get_session().get_service_model("ec2")
    serializer = create_serializer("ec2")
    failed = 0
    for (action, body), (want_action, params) in zip(lines, EXPECTED):
        assert action == want_action, (action, want_action)
        req = serializer.serialize_to_request(params, model.operation_model(action))
        want = {k: str(v) for k, v in req["body"].items()}
        got_pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
        got = dict(got_pairs)
        problems = []
        if len(got) != len(got_pairs):
            problems.append("a parameter is given twice")
        for k in sorted(set(want) | set(got)):
            if want.get(k) != got.get(k):
                problems.append("%s: skyhost %r, botocore %r" % (k, got.get(k), want.get(k)))
        reencoded = "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in got_pairs)
        if reencoded != body:
            problems.append("not RFC 3986 encoded:\n    %s\n    %s" % (body, reencoded))
        if problems:
            failed += 1
            print("FAIL %s\n  %s" % (action, "\n  ".join(problems)))
        else:
            print("ok %s (%d parameters)" % (action, len(want)))
    print("%d passed, %d failed (botocore %s)" % (len(EXPECTED) - failed, failed, botocore.__version__))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
