"""Routing time per image on CPU: ``python benchmarks/bench_router.py [--weights DIR]``.

Times ``Router.route`` end to end (resize to the router's input, network, faiss search over
the training photos, building the decisions) for a few batch sizes, photo sizes and thread
counts, median of several runs after a warm-up. Without trained weights it times an untrained
stand-in of the same architecture and index size (the time does not depend on the weights).
Results go to ``benchmarks/results/router.json``.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router import Calibration, NeighbourIndex, Router, RouterError, load_router  # noqa: E402
from router.net import create_router_net  # noqa: E402

HERE = Path(__file__).resolve().parent


def stand_in(photos: int = 11600) -> Router:
    net = create_router_net("effnet_lite0_router", num_domains=3, pretrained=False)
    rng = np.random.default_rng(0)
    vectors = rng.random((photos, net.embed_dim), dtype=np.float32)
    labels = np.arange(photos) % 3
    index = NeighbourIndex.build(
        vectors, [f"{i}.jpg" for i in range(photos)], labels, ["a", "b", "c"]
    )
    return Router(net, index, Calibration(k=10), ["a", "b", "c"], 0.9)


def median_ms(fn, batch: int, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=HERE.parent / "weights" / "router")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out", type=Path, default=HERE / "results" / "router.json")
    args = p.parse_args()
    try:
        router, source = load_router(args.weights), str(args.weights)
    except RouterError as exc:
        print(f"note: {exc}; timing an untrained stand-in of the same size", file=sys.stderr)
        router, source = stand_in(), "untrained stand-in (effnet_lite0_router, 11,600-photo index)"
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batches:
            for h, w in ((256, 256), (768, 1024)):
                l_norm = torch.rand(batch, 1, h, w) * 2 - 1
                prepared = router.prepare(l_norm)
                route = median_ms(lambda x=l_norm: router.route(x), batch, args.repeat)
                with torch.inference_mode():
                    net = median_ms(lambda x=prepared: router.net(x), batch, args.repeat)
                with torch.inference_mode():
                    embeddings = router.net(prepared)[1].numpy()
                search = median_ms(
                    lambda e=embeddings: router.index.search(e, router.calibration.k),
                    batch,
                    args.repeat,
                )
                rows.append(
                    {
                        "threads": threads,
                        "batch": batch,
                        "photo": f"{w}x{h}",
                        "route_ms_per_image": round(route, 2),
                        "network_ms_per_image": round(net, 2),
                        "index_search_ms_per_image": round(search, 3),
                    }
                )
                print(
                    f"threads {threads} batch {batch:2d} photo {w:4d}x{h:<4d}: "
                    f"route {route:7.2f} ms/img (network {net:6.2f}, faiss search {search:6.3f})"
                )
    result = {
        "router": source,
        "input_size": router.input_size,
        "index_photos": len(router.index),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg()[0],
        },
        "results": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
