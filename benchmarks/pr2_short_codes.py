"""Item 5 diagnostics: why DNNH's P@r2 is low at 12 bits. Prints per variant: MAP, P@r2, empty-ball share,
the share of relaxed outputs within 0.1 of 0.5, the mean Hamming distance of a database code to its
class's majority code, the smallest Hamming distance between two classes' majority codes, and
the share of same-class / other-class database items within radius 2 of a query."""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
from dnnh.data.registry import load_dataset, make_split
from dnnh.config import TrainConfig
from dnnh.training.train import train
from dnnh.evaluation import score_codes
from dnnh.encoder import Encoder
from dnnh.data.pipeline import BatchSource

data, variants = sys.argv[1], json.loads(sys.argv[2])
common = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
split_kw = common.pop("split", {"protocol": "paper", "queries_per_class": 10, "train_per_class": 100})
ds = load_dataset(data)
split = make_split(ds, val_fraction=0.1, seed=0, **split_kw)
labels = ds.labels
for name, over in variants.items():
    t0 = time.time()
    cfg = TrainConfig.from_recipe("modern", **{"nbits": 12, "num_workers": 0, "threads": 1, **common, **over})
    r = train(cfg, ds, split, f"/tmp/h24/pr2/{data}/{name}", progress=False)
    enc = Encoder(r.model, r.prep)
    q, d = enc.encode_split(ds, split)
    rep = score_codes(q, d)
    src = BatchSource(ds, r.prep, num_workers=0)
    r.model.eval()
    outs = []
    with torch.no_grad():
        for b in src.batches([split.database[i:i + 512] for i in range(0, len(split.database), 512)]):
            outs.append(r.model(b).numpy())
    s = np.concatenate(outs)
    near = float((np.abs(s - 0.5) < 0.1).mean())
    db, dl = d.bits.astype(int), labels[split.database]
    modes = np.array([(db[dl == c].mean(0) > 0.5).astype(int) for c in np.unique(dl)])
    spread = float(np.mean([np.abs(db[dl == c] - modes[i]).sum(1).mean() for i, c in enumerate(np.unique(dl))]))
    cd = [(modes[i] != modes[j]).sum() for i in range(len(modes)) for j in range(i + 1, len(modes))]
    qb, ql = q.bits.astype(int), labels[split.query]
    ins, oth, nsame = [], [], []
    for i in range(0, len(qb), 50):
        ham = (qb[i:i + 50, None, :] != db[None, :, :]).sum(-1)
        ball = ham <= 2
        same = (ql[i:i + 50, None] == dl[None, :])
        ins.append((ball & same).sum(1))
        oth.append((ball & ~same).sum(1))
        nsame.append(same.sum(1))
    in_same = float(np.concatenate(ins).mean() / np.concatenate(nsame).mean())
    other_in = float(np.concatenate(oth).mean())
    const = int((db.min(0) == db.max(0)).sum())
    print(f"{name:>22}: MAP {rep.map:.4f} P@r2 {rep.precision_radius:.4f} empty {rep.empty_ball_fraction:.3f} "
          f"near0.5 {near:.3f} spread {spread:.2f} min-centre-dist {min(cd)} mean {np.mean(cd):.1f} "
          f"same-in-r2 {in_same:.3f} other-in-r2/query {other_in:.1f} const-bits {const} "
          f"({time.time() - t0:.0f}s)", flush=True)
