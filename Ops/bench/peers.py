"""Ops/bench/peers.py — the engine's peers on the same work as `xray bench engine`: PyTorch
(eager, CPU) inference at batch 1 and 16 and training at batch 16 (BCE with logits, Adam), and
ONNX Runtime inference at batch 1 and 16 (the PyTorch model exported to ONNX, graph
optimisations on), for the small CNN (the engine's small-cnn: 4 blocks of conv 3x3, batch norm,
ReLU, max pool 2x2 with 32-256 channels, global average pooling, linear), ResNet-18 and
DenseNet-121 with 14 outputs, on random 3xSIZExSIZE inputs. One JSON line per architecture.

    PYTHONPATH=.deps/reference python3 Ops/bench/peers.py --archs small-cnn,resnet18 --seconds 4 --threads 2
"""
import argparse, json, os, sys, tempfile, time, types, warnings

warnings.filterwarnings("ignore")
# torchvision's compiled operators (nms, roi_align) are built for another torch; the model
# definitions used here are pure Python and need only this registration module skipped (as in
# Tests/EngineTests/Reference/make_reference.py).
sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
import numpy as np
import torch
import torchvision
import onnxruntime as ort


def small_cnn(labels):
    layers, channels = [], 3
    for width in (32, 64, 128, 256):
        layers += [torch.nn.Conv2d(channels, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width),
                   torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)]
        channels = width
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, labels))


def model(arch, labels=14):
    if arch == "small-cnn":
        return small_cnn(labels)
    if arch == "resnet18":
        return torchvision.models.resnet18(num_classes=labels)
    if arch == "densenet121":
        return torchvision.models.densenet121(num_classes=labels)
    raise SystemExit(f"peers.py: unknown architecture {arch}")


def rate(step, batch, seconds):
    step()  # warm-up
    images, start = 0, time.perf_counter()
    while True:
        step()
        images += batch
        if time.perf_counter() - start >= seconds:
            return images / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--archs", default="small-cnn,resnet18,densenet121")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    for arch in args.archs.split(","):
        net = model(arch)
        figures = {"arch": arch, "torch": torch.__version__, "onnxruntime": ort.__version__, "threads": args.threads}
        x1 = torch.randn(1, 3, args.size, args.size)
        x16 = torch.randn(16, 3, args.size, args.size)
        net.eval()
        with torch.no_grad():
            figures["torch_infer1"] = rate(lambda: net(x1), 1, args.seconds)
            figures["torch_infer16"] = rate(lambda: net(x16), 16, args.seconds)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, arch + ".onnx")
            torch.onnx.export(net, x1, path, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            a1, a16 = x1.numpy(), x16.numpy()
            figures["ort_infer1"] = rate(lambda: session.run(None, {"image": a1}), 1, args.seconds)
            figures["ort_infer16"] = rate(lambda: session.run(None, {"image": a16}), 16, args.seconds)
        net.train()
        targets = (torch.rand(16, 14) > 0.5).float()
        loss_fn = torch.nn.BCEWithLogitsLoss()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

        def train_step():
            optimizer.zero_grad(set_to_none=False)
            loss_fn(net(x16), targets).backward()
            optimizer.step()
        figures["torch_train16"] = rate(train_step, 16, args.seconds)
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
