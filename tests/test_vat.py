"""VAT: the power-iteration direction against an exact Hessian-vector product, and its side effects."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imae.config import TrainConfig
from imae.estimators import categorical_kl
from imae.networks import HybridAutoencoder
from imae.precision import autocast
from imae.data.batches import ImageSet
from imae.training import forward_pass, per_sample_vat_radius
from imae.vat import adversarial_direction, virtual_adversarial_loss


def _nets():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 5))
    net64 = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 5)).double()
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    return net, net64, torch.rand(64, 20) * 3


def _exact_direction(net64, x, start):
    """H d / |H d|, H the Hessian of KL(p(y|x) || p(y|x + r)) at r = 0, in float64 by double backward."""
    x = x.double()
    target = net64(x).detach()
    r = torch.zeros_like(x, requires_grad=True)
    (g,) = torch.autograd.grad(categorical_kl(target, net64(x + r)).sum(), r, create_graph=True)
    (hd,) = torch.autograd.grad((g * start.double()).sum(), r)
    return F.normalize(hd, dim=1)


def _cosines(xi, precision="fp32", direction=adversarial_direction):
    net, net64, x = _nets()
    torch.manual_seed(1)
    start = torch.randn_like(x)  # the same draw adversarial_direction makes after this seed
    exact = _exact_direction(net64, x, start)
    torch.manual_seed(1)
    with autocast(precision, x.device):  # as in training: the network returns float32 (networks.py)
        d = direction(lambda v: net(v).float(), x, net(x).float(), xi)
    return (d.double() * exact).sum(1).abs()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_direction_matches_exact_power_iteration(precision):
    for xi in (1e-2, TrainConfig(recipe="paper").validate().vat_xi):
        assert _cosines(xi, precision).mean() > 0.95
    # The tuned recipe's and IMSAT's xi = 5 is no infinitesimal step on [0, 1] images (their norm is about 9 on
    # MNIST): a finite difference whose direction leans away from the Hessian's top eigenvector, by design.
    assert TrainConfig().validate().vat_xi == 5.0
    assert 0.7 < _cosines(5.0, precision).mean() < 0.95


def _bf16_direction(classify, x, logits, xi):
    """The power iteration left to bf16 autocast, as adversarial_direction does not."""
    d = (xi * F.normalize(torch.randn_like(x), dim=1)).requires_grad_(True)
    (grad,) = torch.autograd.grad(categorical_kl(logits.detach(), classify(x + d)).mean(), d)
    return F.normalize(grad, dim=1)


def test_a_bf16_power_iteration_loses_the_direction():
    # Why adversarial_direction runs in float32 under bf16: bf16 rounds x + d and the hidden units.
    assert _cosines(1e-2, "bf16", _bf16_direction).mean() < 0.8
    assert _cosines(1e-2, "bf16").mean() > 0.99


def test_tiny_xi_loses_the_direction_in_float32():
    # The reference xi = 1e-6 leaves a KL near 1e-13: its float32 gradient is rounding noise.
    assert _cosines(1e-6).mean() < 0.8


def test_adversarial_beats_random_direction():
    net, _, x = _nets()
    logits = net(x)
    torch.manual_seed(2)
    adversarial = virtual_adversarial_loss(net, x, logits, eps=1.0, xi=TrainConfig().validate().vat_xi)
    random = categorical_kl(logits, net(x + F.normalize(torch.randn_like(x), dim=1))).mean()
    assert adversarial.item() > 2 * random.item() > 0


def test_per_sample_radius():
    net, _, x = _nets()
    logits = net(x)
    torch.manual_seed(3)
    zero = virtual_adversarial_loss(net, x, logits, eps=torch.zeros(64), xi=1.0)
    assert zero.item() < 1e-6


def test_vat_leaves_batchnorm_statistics_untouched():
    x = torch.rand(32, 784)
    stats = []
    for vat in (False, True):
        torch.manual_seed(0)
        model = HybridAutoencoder((28, 28))
        forward_pass(model, x, TrainConfig(vat=vat).validate())
        stats.append([b.clone() for b in model.encoder.buffers()])
    for without, with_vat in zip(*stats):
        assert torch.equal(without, with_vat)


def test_vat_term_is_nonzero_and_differentiable():
    torch.manual_seed(0)
    model = HybridAutoencoder((28, 28))
    fp = forward_pass(model, torch.rand(32, 784), TrainConfig().validate())
    assert fp.vat.item() > 1e-6
    fp.vat.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0


def test_nearest_neighbour_radius_brute_force():
    from scipy.spatial.distance import cdist

    from imae.vat import nearest_neighbour_radius
    x = torch.rand(23, 7, dtype=torch.float64)
    distances = cdist(x.numpy(), x.numpy())
    expected = [0.25 * sorted(row[j] for j in range(23) if j != i)[2] for i, row in enumerate(distances)]
    got = nearest_neighbour_radius(x, neighbours=3, scale=0.25, chunk=5)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_the_neighbour_radius_on_fewer_images_than_neighbours_is_the_farthest_other_image():
    x = torch.tensor([[[0, 0]], [[3, 4]], [[0, 1]]], dtype=torch.uint8)  # pixel distances 0-1: 5, 0-2: 1, 1-2: √18
    cfg = TrainConfig(vat_eps=0.5, vat_eps_neighbours=10).validate()
    radius = per_sample_vat_radius(cfg, ImageSet(x, None, "x"))
    torch.testing.assert_close(radius, 0.5 * torch.tensor([5.0, 5.0, math.sqrt(18.0)]) / 255)


def test_the_neighbour_distance_cache_returns_what_it_computed_and_recomputes_a_damaged_file(monkeypatch, tmp_path):
    from imae import neighbour_cache
    from imae.vat import nearest_neighbour_radius
    monkeypatch.setenv("IMAE_CACHE_DIR", str(tmp_path / "cache"))
    images = torch.randint(0, 256, (40, 3, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    computed = neighbour_cache.neighbour_distance(images, 4)
    assert torch.equal(computed, nearest_neighbour_radius(images.reshape(40, -1).float() / 255, 4, 1.0))
    [stored] = (tmp_path / "cache").iterdir()

    def no_computing(*args):
        raise AssertionError("computed again although cached")
    monkeypatch.setattr(neighbour_cache, "nearest_neighbour_radius", no_computing)
    assert torch.equal(neighbour_cache.neighbour_distance(images, 4), computed)  # bit for bit, from the file
    with pytest.raises(AssertionError, match="computed again"):  # another k, other images: another key
        neighbour_cache.neighbour_distance(images, 3)
    with pytest.raises(AssertionError, match="computed again"):
        neighbour_cache.neighbour_distance(images.flip(0), 4)

    monkeypatch.setattr(neighbour_cache, "nearest_neighbour_radius", nearest_neighbour_radius)
    stored.write_bytes(b"half a file")
    assert torch.equal(neighbour_cache.neighbour_distance(images, 4), computed)
    assert torch.equal(torch.load(stored), computed)  # replaced by the recomputed distances


def test_an_empty_cache_directory_setting_turns_the_neighbour_cache_off(monkeypatch, tmp_path):
    from imae import neighbour_cache
    monkeypatch.setenv("IMAE_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    images = torch.randint(0, 256, (12, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    neighbour_cache.neighbour_distance(images, 2)
    assert not any(tmp_path.iterdir())
