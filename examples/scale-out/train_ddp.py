"""The PyTorch side of the scale-out recipe (see README.md beside this file).

    torchrun --nproc_per_node=2 train_ddp.py DIR

Builds the model gyre exported (nn.Embedding → nn.LSTM(batch_first) → nn.Linear), loads its
layers' state_dicts from DIR, checks that it computes gyre's held-out loss, trains it with
DistributedDataParallel (gloo, CPU) and Adam, each process on its own half of every batch, and
writes the layers back for gyre (torch-<layer>.safetensors) with the losses (torch.json).
"""
import json
import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Names(nn.Module):
    def __init__(self, vocab, dim=32, hidden=128):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, vocab)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.linear(out)


def mean_loss(model, x, y, lengths):
    """Cross-entropy over the real steps only, as gyre's (padded steps are left out)."""
    logits = model(x, lengths)
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return nn.functional.cross_entropy(logits[mask], y[mask])


def main():
    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = json.load(open(os.path.join(out, "data.json")))
    tensors = {k: (torch.tensor(v["x"]), torch.tensor(v["y"]), torch.tensor(v["lengths"])) for k, v in data.items() if k in ("train", "held")}
    model = Names(data["vocab"])
    for name in ("embedding", "lstm", "linear"):
        getattr(model, name).load_state_dict(load_file(os.path.join(out, f"{name}.safetensors")))
    with torch.no_grad():
        arrived = mean_loss(model, *tensors["held"]).item()
    if rank == 0:
        print(f"PyTorch, the layers gyre trained (hand-over): held-out loss {arrived:.6f}; "
              f"gyre's {data['gyreLoss']:.6f}; difference {abs(arrived - data['gyreLoss']):.2e}")
    ddp = DDP(model)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=0.005)
    x, y, lengths = tensors["train"]
    n, batch = x.shape[0], 64
    losses = []
    for epoch in range(3):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        total, count = 0.0, 0
        for b in range(0, n, batch):
            idx = order[b:b + batch]
            mine = idx[rank::world]  # each process its share of the batch; DDP averages the gradients
            optimizer.zero_grad()
            loss = mean_loss(ddp, x[mine], y[mine], lengths[mine])
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        with torch.no_grad():
            held = mean_loss(model, *tensors["held"]).item()
        losses.append({"epoch": epoch + 1, "train": total / count, "held": held})
        if rank == 0:
            print(f"PyTorch DDP ({world} processes), epoch {epoch + 1}: training loss {total / count:.4f}, held-out {held:.6f}")
    if rank == 0:
        for name in ("embedding", "lstm", "linear"):
            save_file({k: v.contiguous() for k, v in getattr(model, name).state_dict().items()},
                      os.path.join(out, f"torch-{name}.safetensors"))
        json.dump({"epochs": losses, "heldLoss": losses[-1]["held"]}, open(os.path.join(out, "torch.json"), "w"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
