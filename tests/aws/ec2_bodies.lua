-- Prints, one per line, "<action>\t<body>" for the EC2 requests sky.aws builds: RunInstances
-- through the provider's own run_params (several option sets) and the other calls it makes.
-- tests/aws/test_bodies.py compares each with botocore's serialisation of the same request.
local aws = require "providers.aws"
local ec2 = require "providers.aws.ec2"

local cluster = { id = "pool", uid = "pool-7" }
local r = { zones = { ["use1-az6"] = "us-east-1a" }, key_name = "skyhost-pool-7", group = "sg-0123", image = "ami-0abc" }
local function emit(action, params) print(action .. "\t" .. ec2.body(action, params)) end

local offer = { instance_type = "g4dn.xlarge", zone = "use1-az6", region = "us-east-1" }
emit("RunInstances", aws.new {}:run_params(cluster, 2, offer, r))
emit("RunInstances", aws.new { subnet = "subnet-9", public_ip = false, disk_gb = 120,
  instance_profile = "skyhost-node" }:run_params(cluster, 3, { instance_type = "p3.2xlarge", spot = true }, r))
emit("RunInstances", aws.new { subnet = "subnet-9" }:run_params(cluster, 1,
  { instance_type = "g5.xlarge", zone = "use1-az6", spot = true }, r))
emit("DescribeInstances", { Filter = { { Name = "tag:skyhost-pool", Value = { "pool-7" } } } })
emit("DescribeInstances", { InstanceId = { "i-1" } })
emit("TerminateInstances", { InstanceId = { "i-1", "i-2" } })
emit("ImportKeyPair", { KeyName = "skyhost-pool-7", PublicKeyMaterial = require("skyhost.encoding").base64_encode("ssh-ed25519 AAAA x"),
  TagSpecification = { { ResourceType = "key-pair", Tag = { { Key = "skyhost-pool", Value = "pool-7" } } } } })
emit("AuthorizeSecurityGroupIngress", { GroupId = "sg-0123", IpPermissions = { { IpProtocol = "tcp", FromPort = 22,
  ToPort = 22, IpRanges = { { CidrIp = "10.213.0.1/32" } } } } })
emit("DescribeImages", { Owner = { aws.DEFAULT_IMAGE_OWNER }, Filter = { { Name = "name", Value = { aws.DEFAULT_IMAGE_NAME } },
  { Name = "architecture", Value = { "x86_64" } } } })
emit("DeleteSecurityGroup", { GroupId = "sg-0123" })
emit("DescribeSpotPriceHistory", require("providers.aws.prices").request({ "g4dn.xlarge", "p3.2xlarge" }, 1700000000))
emit("GetConsoleOutput", { InstanceId = "i-1" })
