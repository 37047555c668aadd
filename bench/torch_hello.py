"""The smallest distributed job: join the group, say so, leave (bench/run-ssh.sh, torch section)."""
import torch.distributed as dist

dist.init_process_group("gloo")
print(f"rank {dist.get_rank()} of {dist.get_world_size()}", flush=True)
dist.destroy_process_group()
