# skyhost offers: the catalog snapshot, cheapest first; skyhost check: credentials per provider.
# The broker seen from a script: fallback notes and the cost summary (scripts/fallback.lua).

$ skyhost offers --accelerator H100 --count 8 --limit 3
PROVIDER    INSTANCE TYPE     GPU   COUNT  GPU GiB  vCPU  RAM GiB  REGION         ZONE      $/H  SPOT $/H
mithril     h100-80gb.sxm.8x  H100      8       80   168     1814  us-central2-a  -      8.0000    8.0000
lium        H100-SXM_8x       H100      8       80   192     1007  RU             -     14.0000         -
hyperstack  n3-H100x8         H100      8       80   252     1440  CANADA-1       -     15.2000         -
3 of 95 offers; USD per hour per instance; catalog snapshot (late-2025) from skypilot-catalog, see providers/catalog/README.md
not implemented in this build yet, listed for their prices: hyperstack, lium, mithril

$ skyhost offers --accelerator h100-sxm --count=8 --spot --limit 4
PROVIDER        INSTANCE TYPE                             GPU   COUNT  GPU GiB  vCPU  RAM GiB  REGION         ZONE               $/H  SPOT $/H
primeintellect  datacrunch__8xH100_80GB__176__1480__SPOT  H100      8       80   176     1480  IS             ICE-01               -    6.8400
mithril         h100-80gb.sxm.8x                          H100      8       80   168     1814  us-central2-a  -               8.0000    8.0000
nebius          gpu-h100-sxm_8gpu-128vcpu-1600gb          H100      8       80   128     1600  eu-north1      -              23.6000   10.0000
aws             p5.48xlarge                               H100      8       80   192     2048  us-east-1      use1-atl2-az1  55.0400   10.2397
4 of 33 offers; USD per hour per instance; catalog snapshot (late-2025) from skypilot-catalog, see providers/catalog/README.md
not implemented in this build yet, listed for their prices: mithril, nebius, primeintellect

$ skyhost offers --accelerator A100-80GB --provider lambda,gcp --limit 2
PROVIDER  INSTANCE TYPE   GPU        COUNT  GPU GiB  vCPU  RAM GiB  REGION       ZONE              $/H  SPOT $/H
gcp       a2-ultragpu-1g  A100-80GB      1       80    12      170  us-central1  us-central1-a  2.9458    2.5138
gcp       a2-ultragpu-1g  A100-80GB      1       80    12      170  us-central1  us-central1-c  2.9458    2.5138
2 of 45 offers; USD per hour per instance; catalog snapshot (late-2025) from skypilot-catalog, see providers/catalog/README.md

$ skyhost offers --accelerator L4 --json --limit 2
{"provider":"seeweb","instance_type":"ECS1GPU6","accelerator":"L4","count":1,"gpu_memory":24,"vcpus":4,"memory":32,"region":null,"zone":null,"price":0.38,"spot_price":null,"source":"seeweb_vms.csv","date":"late-2025"}
{"provider":"jarvislabs","instance_type":"1x_L4_28V_124G","accelerator":"L4","count":1,"gpu_memory":24,"vcpus":28,"memory":124,"region":"IN2","zone":null,"price":0.44,"spot_price":null,"source":"jarvislabs_vms.csv","date":"late-2025"}

$ skyhost offers --accelerator H100 --count 3 --provider aws
no offers match

$ skyhost offers --accelerator H10
skyhost offers: unknown accelerator 'H10': did you mean H100?
[exit 1]

$ skyhost offers --provider awz
skyhost offers: --provider: unknown provider 'awz': did you mean aws? (providers: local, slurm, aws, gcp, lambda, runpod, vast, nebius, oci, cudo, verda, shadeform, primeintellect, hyperstack, hyperbolic, lium, daytona, jarvislabs, seeweb, mithril, fluidstack, paperspace, yotta, digitalocean; define your own with sky.provider{...})
[exit 1]

$ skyhost offers --bogus
skyhost offers: unknown argument '--bogus'
Try 'skyhost offers --help'.
[exit 2]

$ skyhost offers --count
skyhost offers: --count needs a value
Try 'skyhost offers --help'.
[exit 2]

$ skyhost offers --count 0
skyhost offers: --count must be a whole number above 0, got '0'
Try 'skyhost offers --help'.
[exit 2]

$ skyhost offers --help | head -2
usage: skyhost offers [--accelerator NAME] [--count N] [--spot] [--provider P]... [--region R]
                      [--limit N] [--offline] [--json]

$ cd /tmp && skyhost offers --accelerator B200 --count 8 --limit 1 | tail -2
1 of \d+ offers; USD per hour per instance; catalog snapshot \(late-2025\) from skypilot-catalog, see providers/catalog/README.md (re)
not implemented in this build yet, listed for their prices: .* (re)

$ rm -rf /tmp/skyhost-check-home && mkdir -p /tmp/skyhost-check-home/.aws && touch /tmp/skyhost-check-home/.aws/credentials && env -i PATH="$PATH" HOME=/tmp/skyhost-check-home RUNPOD_API_KEY=s3cr3t skyhost check | head -8
PROVIDER        STATUS           CREDENTIALS
local           ready            none needed: workers run on this machine
ssh             ready            machines you list with sky.ssh{hosts = ...}; keys from ~/.ssh or identity =
aws             ready            not found (looked at $AWS_ACCESS_KEY_ID, $AWS_PROFILE, $AWS_WEB_IDENTITY_TOKEN_FILE, ~/.aws/credentials)
gcp             ready            not found (looked at $GOOGLE_APPLICATION_CREDENTIALS, ~/.config/gcloud/application_default_credentials.json, ~/.config/gcloud/credentials.db)
lambda          ready            not found (looked at $LAMBDA_API_KEY, ~/.lambda_cloud/lambda_keys)
runpod          ready            found: $RUNPOD_API_KEY
vast            ready            not found (looked at $VAST_API_KEY, $VASTAI_API_KEY, ~/.vast_api_key, ~/.config/vastai/vast_api_key)

$ env -i PATH="$PATH" AWS_EC2_METADATA_DISABLED=true HOME=/tmp/skyhost-check-home RUNPOD_API_KEY=s3cr3t skyhost check | grep -c s3cr3t
0
[exit 1]

$ env -i PATH="$PATH" AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent skyhost check | grep -c 'not found'
22

$ skyhost check --all
skyhost check: unknown argument '--all'
Try 'skyhost check --help'.
[exit 2]

$ skyhost scripts/fallback.lua 2>/dev/null
running on steady
steady: terminating demo-box-1, demo-box-2

$ skyhost scripts/fallback.lua 2>&1 >/dev/null
skyhost: pool demo: attempt 1 failed: gpu-small on flaky (eu-1, spot, $0.9000/h): NoCapacity: no spot capacity in eu-1; blocked zone eu-1 of flaky (spot)
skyhost: pool demo: attempt 2 failed: gpu-small on flaky (eu-1, on-demand, $2.5000/h): NoCapacity: no on-demand capacity in eu-1; blocked zone eu-1 of flaky (on-demand)
cost of pool demo:
  node   provider     instance type          market         USD/h   seconds       cost
  0      steady       box                    on-demand     3.6000 +\d+\.\d +\$\d\.\d+ (re)
  1      steady       box                    on-demand     3.6000 +\d+\.\d +\$\d\.\d+ (re)
  total \$\d\.\d+; on demand it would have cost \$\d\.\d+ (re)

$ skyhost -e 'local p <close> = sky.compute{ provider = "nebius", accelerator = "H100" }'
skyhost: pool pool-1: provider 'nebius' has 1 matching offers in the catalog (from $1.25/h) but is not implemented in this build yet; define it with sky.provider{name = "nebius", ...} or remove it
(command line):1: sky.compute: no offer matches H100 x1 on nebius:
  1. nebius: provider 'nebius' has 1 matching offers in the catalog (from $1.25/h) but is not implemented in this build yet; define it with sky.provider{name = "nebius", ...} or remove it [blocked provider nebius]
[exit 1]

$ env -i PATH="$PATH" AWS_EC2_METADATA_DISABLED=true HOME=/tmp/skyhost-no-gcp skyhost -e 'local p <close> = sky.compute{ provider = sky.gcp{ zone = "us-central1-a" }, accelerator = "H100", display = "quiet", allocation = "on-demand" }'
(command line):1: sky.compute: could not provision 1 node (H100 x1 on gcp); all 1 attempts failed:
  1. a3-highgpu-1g on gcp (us-central1-a, on-demand, $5.3833/h): prepare failed: sky.gcp: no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set and /tmp/skyhost-no-gcp/.config/gcloud/application_default_credentials.json does not exist; create a service-account key (`gcloud iam service-accounts keys create key.json --iam-account NAME@PROJECT.iam.gserviceaccount.com`) and set GOOGLE_APPLICATION_CREDENTIALS to its path, or run `gcloud auth application-default login`, or pass sky.gcp{credentials = "key.json"} [blocked provider gcp]
[exit 1]

$ env -i PATH="$PATH" AWS_EC2_METADATA_DISABLED=true HOME=/tmp/skyhost-no-aws skyhost -e 'local p <close> = sky.compute{ provider = "aws", accelerator = "H100", display = "quiet" }'
(command line):1: sky.compute: could not provision 1 node (H100 x1 on aws); all 1 attempts failed:
  1. p5.4xlarge on aws (use1-az1, on-demand, $6.8800/h): prepare failed: sky.aws: no AWS credentials: no AWS_ACCESS_KEY_ID in the environment, and profile 'default' is in neither /tmp/skyhost-no-aws/.aws/credentials nor /tmp/skyhost-no-aws/.aws/config, no container credentials (instance metadata disabled); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`, or name a profile of ~/.aws/credentials with sky.aws{profile = "name"} [blocked provider aws]
  not tried: 26 attempts in blocked zones, regions or providers
[exit 1]

$ skyhost -e 'local p <close> = sky.compute{ accelerator = sky.accelerators.H100{count = 8}, budget = 1 }'
(command line):1: sky.compute: no offer matches H100 x8 on local
[exit 1]
