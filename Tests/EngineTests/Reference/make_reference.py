#!/usr/bin/env python3
"""Reference outputs for the engine's tests, computed by PyTorch, torchvision and ONNX Runtime
(independent implementations) on the weights and inputs saved beside them.

    make_reference.py OUTDIR

Writes OUTDIR/*.safetensors (inputs, weights, expected outputs and gradients; each file's
metadata says how the layer is configured) and OUTDIR/*.onnx (models exported by PyTorch for
the import path). Deterministic: fixed seeds.
"""
import json, os, sys, types

# torchvision's compiled operators (nms, roi_align) are built for another torch; the model
# definitions used here are pure Python and need only this registration module skipped.
sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

torch.set_num_threads(2)
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)


def save(name, tensors, **config):
    tensors = {k: v.detach().contiguous().float() if v.dtype != torch.int64 else v.detach().contiguous()
               for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, name + ".safetensors"), metadata={"config": json.dumps(config)})


def grads_of(module, x, dy):
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.backward(dy)
    return y, x.grad


# --- single layers: forward output and backward gradients for a given ∂loss/∂y ---------------
def conv_case(name, n, c, oc, h, w, k, stride, padding, bias):
    torch.manual_seed(hash(name) % 1000)
    conv = nn.Conv2d(c, oc, k, stride=stride, padding=padding, bias=bias)
    x = torch.randn(n, c, h, w)
    y, dx = grads_of(conv, x, torch.randn(conv(x).shape))
    dy = torch.randn(y.shape)
    conv.zero_grad()
    y, dx = grads_of(conv, x, dy)
    t = {"x": x, "weight": conv.weight, "dy": dy, "y": y, "dx": dx, "dweight": conv.weight.grad}
    if bias:
        t.update(bias=conv.bias, dbias=conv.bias.grad)
    save(name, t, kind="conv", channels=c, out_channels=oc, kernel=k, stride=stride, padding=padding, bias=bias)


conv_case("conv3x3", 2, 3, 4, 9, 9, 3, 1, 1, True)
conv_case("conv3x3_stride2", 2, 5, 6, 10, 11, 3, 2, 1, False)
conv_case("conv7x7_stem", 2, 3, 8, 20, 18, 7, 2, 3, False)
conv_case("conv1x1", 3, 8, 5, 6, 6, 1, 1, 0, False)
conv_case("conv1x1_stride2", 2, 6, 4, 7, 7, 1, 2, 0, True)

torch.manual_seed(1)
bn = nn.BatchNorm2d(5)
with torch.no_grad():
    bn.weight.uniform_(0.5, 1.5); bn.bias.uniform_(-0.5, 0.5)
    bn.running_mean.uniform_(-0.2, 0.2); bn.running_var.uniform_(0.5, 1.5)
start = {k: v.clone() for k, v in bn.state_dict().items()}
x = torch.randn(4, 5, 6, 7) * 2 + 0.5
dy = torch.randn(4, 5, 6, 7)
bn.train()
y, dx = grads_of(bn, x, dy)
save("batchnorm_training", {"x": x, "dy": dy, "y": y, "dx": dx, "weight": start["weight"], "bias": start["bias"],
                            "running_mean": start["running_mean"], "running_var": start["running_var"],
                            "dweight": bn.weight.grad, "dbias": bn.bias.grad,
                            "new_running_mean": bn.running_mean, "new_running_var": bn.running_var},
     kind="batchnorm", channels=5, mode="training")
bn.eval()
y = bn(x)
save("batchnorm_inference", {"x": x, "y": y, "weight": bn.weight, "bias": bn.bias,
                             "running_mean": bn.running_mean, "running_var": bn.running_var},
     kind="batchnorm", channels=5, mode="inference")

for name, module, shape in [("maxpool3x3_stride2_pad1", nn.MaxPool2d(3, 2, 1), (2, 3, 9, 10)),
                            ("maxpool2x2", nn.MaxPool2d(2, 2), (2, 3, 8, 9)),
                            ("avgpool2x2", nn.AvgPool2d(2, 2), (2, 3, 8, 6)),
                            ("relu", nn.ReLU(), (2, 3, 5, 5)),
                            ("global_avgpool", nn.AdaptiveAvgPool2d(1), (2, 4, 5, 3))]:
    torch.manual_seed(2)
    x = torch.randn(*shape)
    dy = torch.randn(module(x).shape)
    y, dx = grads_of(module, x, dy)
    save(name, {"x": x, "dy": dy, "y": y, "dx": dx}, kind=name)

torch.manual_seed(3)
dense = nn.Linear(7, 5)
x = torch.randn(3, 7)
dy = torch.randn(3, 5)
y, dx = grads_of(dense, x, dy)
save("dense", {"x": x, "dy": dy, "y": y, "dx": dx, "weight": dense.weight, "bias": dense.bias,
               "dweight": dense.weight.grad, "dbias": dense.bias.grad}, kind="dense")

torch.manual_seed(4)
z = (torch.randn(6, 4) * 4).requires_grad_(True)
targets = (torch.rand(6, 4) > 0.6).float()
pos_weight = torch.tensor([1.0, 3.0, 0.5, 10.0])
loss = F.binary_cross_entropy_with_logits(z, targets, pos_weight=pos_weight)
loss.backward()
save("sigmoid_bce", {"logits": z, "targets": targets, "pos_weight": pos_weight, "loss": loss.reshape(1), "dlogits": z.grad},
     kind="sigmoid_bce")


# --- whole networks, torchvision's definitions, eval mode --------------------------------------
def randomise_statistics(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)


def network_case(name, model, batch):
    torch.manual_seed(5)
    randomise_statistics(model, 6)
    model.eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        y = model(x)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, name + ".safetensors"))
    save(name + "_io", {"x": x, "logits": y}, kind="network", architecture=name)
    return model, x


resnet18, x18 = network_case("resnet18", torchvision.models.resnet18(num_classes=14), 2)
densenet121, x121 = network_case("densenet121", torchvision.models.densenet121(num_classes=14), 1)
resnet50 = torchvision.models.resnet50(num_classes=14)
save_file({k: v.contiguous() for k, v in resnet50.state_dict().items()}, os.path.join(OUT, "resnet50.safetensors"))

# --- ONNX: exported by PyTorch, run by ONNX Runtime --------------------------------------------
import onnxruntime as ort


def onnx_case(name, model, x, fold):
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, input_names=["image"], output_names=["output"], dynamo=False,
                      do_constant_folding=fold, opset_version=17)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = session.run(None, {"image": x.numpy()})[0]
    save(name + "_io", {"x": x, "output": torch.from_numpy(y)}, kind="onnx", architecture=name)


# A ResNet-18 exported with constant folding: every batch norm is folded into its convolution.
onnx_case("resnet18_folded", resnet18, x18[:1], True)
# CheXNet's shape: DenseNet-121 with a 14-way Linear + Sigmoid classifier, exported as is.
chexnet = torchvision.models.densenet121()
chexnet.classifier = nn.Sequential(nn.Linear(1024, 14), nn.Sigmoid())
randomise_statistics(chexnet, 7)
chexnet.eval()
onnx_case("chexnet_densenet121", chexnet, x121, False)


# --- a few training steps of the small CNN ------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self, labels):
        super().__init__()
        blocks, c = [], 3
        for width in (32, 64, 128, 256):
            blocks.append(nn.Sequential())
            blocks[-1].add_module("conv", nn.Conv2d(c, width, 3, padding=1, bias=False))
            blocks[-1].add_module("bn", nn.BatchNorm2d(width))
            blocks[-1].add_module("relu", nn.ReLU())
            blocks[-1].add_module("pool", nn.MaxPool2d(2))
            c = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c, labels)

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


torch.manual_seed(8)
small = SmallCNN(3)
initial = {k: v.clone().contiguous() for k, v in small.state_dict().items()}
steps, batch = 4, 6
xs = torch.randn(steps, batch, 3, 32, 32)
ys = (torch.rand(steps, batch, 3) > 0.5).float()
pos_weight = torch.tensor([1.0, 2.0, 0.5])
optimiser = torch.optim.Adam(small.parameters(), lr=1e-2, weight_decay=1e-4)
losses = []
first_gradients = {}
small.train()
for s in range(steps):
    optimiser.zero_grad()
    loss = F.binary_cross_entropy_with_logits(small(xs[s]), ys[s], pos_weight=pos_weight)
    loss.backward()
    if s == 0:
        first_gradients = {"grad." + k: p.grad.clone() for k, p in small.named_parameters()}
    optimiser.step()
    losses.append(loss.item())
final = {"final." + k: v.contiguous() for k, v in small.state_dict().items()}
save_file({**initial, **final, **first_gradients, "xs": xs, "ys": ys, "pos_weight": pos_weight, "losses": torch.tensor(losses)},
          os.path.join(OUT, "small_cnn_training.safetensors"),
          metadata={"config": json.dumps({"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-4})})

# --- optimisers on one tensor: the same gradients, PyTorch's update rules ----------------------
torch.manual_seed(9)
p0 = torch.randn(10)
gradients = torch.randn(5, 10)
results = {"p0": p0, "gradients": gradients}
for name, make in [("sgd", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)),
                   ("sgd_nesterov", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                   ("adam", lambda p: torch.optim.Adam([p], lr=0.05, weight_decay=0.01)),
                   ("adamw", lambda p: torch.optim.AdamW([p], lr=0.05, weight_decay=0.1))]:
    p = p0.clone().requires_grad_(True)
    opt = make(p)
    for g in gradients:
        p.grad = g.clone()
        opt.step()
    results[name] = p.detach()
save("optimizers", results, kind="optimizers")
print("reference written to", OUT)
