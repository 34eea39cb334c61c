"""The model registry: sizes from the papers, output contract, and clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from workflow.data.features import scale_images
from workflow.models.images import build_model


@pytest.mark.parametrize(
    ("options", "shape", "parameters"),
    [
        ({"name": "lenet5"}, (28, 28, 1), 61_706),  # LeCun et al. 1998 with a dense C3 and softmax output.
        # S2 and S4 with a coefficient and a bias per map: 2 * (6 + 16) more.
        ({"name": "lenet5", "activation": "scaled_tanh", "trainable_subsampling": True}, (28, 28, 1), 61_750),
        ({"name": "cnn", "filters": [32, 64], "dropout": 0.5}, (28, 28, 1), 34_826),  # Keras "Simple MNIST convnet".
        ({"name": "mlp", "hidden_units": [128]}, (8, 8, 1), 64 * 128 + 128 + 128 * 10 + 10),
        # He et al. 2015 Table 6: 0.27M (20 layers) and 0.85M (56 layers), counting trainable weights.
        ({"name": "resnet", "depth": 20}, (32, 32, 3), 269_722),
        ({"name": "resnet", "depth": 56}, (32, 32, 3), 853_018),
    ],
)
def test_parameter_counts_match_the_references(options, shape, parameters):
    """Each registered model has the parameter count of the architecture it names."""
    model = build_model(options, shape, 10)

    assert sum(int(np.prod(weight.shape)) for weight in model.trainable_weights) == parameters


@pytest.mark.parametrize("name", ["mlp", "cnn", "lenet5", "resnet"])
@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_outputs_are_probabilities(name, shape):
    """Every model maps a batch to float32 rows that sum to 1, for small and large images."""
    model = build_model({"name": name}, shape, 10)
    images = np.random.default_rng(0).random((4, *shape), dtype=np.float32)

    probabilities = np.asarray(model(images, training=False))

    assert probabilities.shape == (4, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_probabilities_stay_float32_under_mixed_precision():
    """Under a mixed policy the hidden layers compute in bfloat16 and the output stays float32."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model({"name": "cnn", "filters": [8]}, (8, 8, 1), 10)
        output = model(np.zeros((2, 8, 8, 1), np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")

    assert model.get_layer("conv_0").compute_dtype == "bfloat16"
    assert np.asarray(output).dtype == np.float32


def test_lenet5_refuses_images_larger_than_its_field():
    """LeNet-5's 32x32 field cannot take 64x64 images; the error says so."""
    with pytest.raises(ValueError, match="up to 32x32, got 64x64"):
        build_model({"name": "lenet5"}, (64, 64, 1), 10)


def test_unknown_model_names_the_known_ones():
    """An unknown name lists the registry."""
    with pytest.raises(ValueError, match="known: mlp, cnn, lenet5"):
        build_model({"name": "vgg"}, (8, 8, 1), 10)


def test_scaling_maps_uint8_to_unit_interval():
    """0 -> 0.0 and 255 -> 1.0, in float32."""
    scaled = scale_images(np.array([0, 51, 255], np.uint8)).numpy()

    np.testing.assert_allclose(scaled, [0.0, 0.2, 1.0])
    assert scaled.dtype == np.float32


def test_resnet_saves_and_loads_in_safe_mode(tmp_path):
    """The option-A shortcut is a registered layer, so a ResNet .keras file loads with safe_mode and predicts alike."""
    model = build_model({"name": "resnet", "depth": 8}, (16, 16, 3), 10)
    images = np.random.default_rng(1).random((2, 16, 16, 3), dtype=np.float32)
    model.save(tmp_path / "resnet.keras")

    loaded = keras.saving.load_model(tmp_path / "resnet.keras", compile=False, safe_mode=True)

    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-6)


def test_resnet_depth_must_be_6n_plus_2():
    """Depth 21 is refused with the allowed form."""
    with pytest.raises(ValueError, match="6n\\+2"):
        build_model({"name": "resnet", "depth": 21}, (32, 32, 3), 10)


def test_scaled_tanh_maps_plus_and_minus_one_to_themselves():
    """LeCun et al. 1998, appendix A: the constants are chosen so that f(1) = 1 and f(-1) = -1."""
    from workflow.models.images import ScaledTanh

    values = ScaledTanh()(np.array([[-1.0, 0.0, 1.0]], dtype="float32")).numpy()
    np.testing.assert_allclose(values, [[-1.0, 0.0, 1.0]], atol=2e-4)


@pytest.mark.parametrize(
    ("filters", "fits"), [([16, 32], True), ([8], True), ([16, 32, 64], False), ([4, 4, 4], False)]
)
def test_the_config_refuses_exactly_the_cnns_keras_cannot_build_on_8x8_digits(filters, fits):
    """config._check_cnn_fits mirrors build_cnn's arithmetic, so a misfit is refused before any (Slurm) job."""
    from helpers import with_change

    from workflow.config import settings as cfg
    from workflow.models.images import build_cnn

    config = with_change("experiments.exp.model", {"name": "cnn", "filters": filters})
    if fits:
        cfg.load_config(config)
        assert build_cnn((8, 8, 1), 10, filters).output_shape == (None, 10)
    else:
        with pytest.raises(cfg.ConfigError, match=r"experiments.exp.model.filters: .* do not fit sklearn_digits's 8x8"):
            cfg.load_config(config)
        with pytest.raises(ValueError):
            build_cnn((8, 8, 1), 10, filters)
