"""Every anomaly score ADAE computes, by name, without TensorFlow (the graph in source.neuralnet builds them from
these definitions; readers of records import the names from here through source.config).

Pixel scores compare two images: the L2 error between them in the network's frame (PIXEL), some over the ink
of both (RELATIVE). Hidden-layer scores (RaPP, Kim et al., ICLR 2020) compare an image and its reconstruction
inside a network: both are fed through that network's encoder on the inference path and compared layer by
layer, from the input layer to the code (PAIRS). A hidden-layer score is either

- LAYERWISE: a fixed weighting of the per-layer squared distances ||h_i(a) - h_i(b)||^2, computed in the graph
  (SAP, RaPP's simple aggregation: every layer; `code`: the code layer alone, latent consistency), or
- FITTED: a function of the pair's differences with statistics fitted on training normals only (NAP, RaPP's
  normalised aggregation: the differences whitened by the normals' singular vectors and values; `stdsap`:
  each layer's distance over its mean on the normals, summed; `stdmax`: the largest of them; `mix`: their mean
  averaged with the pair's ink-relative pixel error over its own mean). Fitting reads training normals and nothing else; the
  statistics are saved with the run so every later scoring of it uses the same ones.

Adding a score: a LAYERWISE weighting, or a FITTED class with the three methods of Nap below, and its name in
HIDDEN_KINDS.
"""
import numpy as np

# pixel scores: the two images (by the names of ADAE.tensors) whose L2 error is the score; the second is the
# image a figure shows beside x. x_dgx, ||x - D(G(x))||_2, is the paper's score; the others are for analysis.
PIXEL = {"x_dgx": ("x", "D(G(x))"), "x_dx": ("x", "D(x)"), "x_gx": ("x", "G(x)"), "gx_dgx": ("G(x)", "D(G(x))"),
         "x_dgx_rel": ("x", "D(G(x))")}
# scores divided by the ink of the two images, ||a|| + ||b|| in the input's frame and range: a thin digit's
# small error is then no sign of normality (chosen on the development split: docs/study.md, fifth round)
RELATIVE = {"x_dgx_rel"}

# hidden-layer pairs: whose encoder (G or D) sees which two images (ADAE.tensors' names). G on (x, G(x)) is
# RaPP's own setting; D on (x, D(G(x))) is the paper's pair in D's features; D on (x, D(x)) D's own rebuild.
PAIRS = {"g_x_gx": ("G", "x", "G(x)"), "d_x_dgx": ("D", "x", "D(G(x))"), "d_x_dx": ("D", "x", "D(x)")}
HIDDEN_KINDS = ("sap", "code", "stdsap", "stdmax", "nap", "mix")
HIDDEN = {f"{kind}_{pair}": (kind, pair) for pair in PAIRS for kind in HIDDEN_KINDS}
SCORE_NAMES = tuple(PIXEL) + tuple(HIDDEN)
G_SCORES = ("x_gx",) + tuple(name for name, (_, pair) in HIDDEN.items() if PAIRS[pair][0] == "G")   # G alone's


def sap_weights(n_layers):
    """SAP: every layer's squared distance, the input's included."""
    return np.ones(n_layers)


def code_weights(n_layers):
    """Latent consistency: the code layer's squared distance alone."""
    return np.eye(n_layers)[-1]


LAYERWISE = {"sap": sap_weights, "code": code_weights}


class StdSap:
    """The sum over layers of each layer's squared distance divided by its mean over the training normals: a
    SAP in which no layer counts more for being larger. Reads the per-layer distances (N, L)."""
    reads = "layers"

    def fit(self, layer_distances):
        """Per-layer means of the training normals' distances."""
        return {"layer_means": np.maximum(layer_distances.mean(0), 1e-12)}

    def score(self, layer_distances, stats):
        return (layer_distances / stats["layer_means"]).sum(1)


class StdMax(StdSap):
    """The largest over layers of each layer's squared distance divided by its mean over the training normals:
    the layer where the pair differs most for its kind, whichever layer that is for an image."""

    def score(self, layer_distances, stats):
        return (layer_distances / stats["layer_means"]).max(1)


class Mix:
    """Half pixels, half hidden layers: the pair's ink-relative pixel error (its input-layer distance's root
    over the ink of its two images, as x_dgx_rel on D's pair) and the mean of its standardised layer
    distances, each over its mean on the training normals, averaged. On the paper's protocol the two readings
    are complementary (docs/study.md, seventh round: x_dgx_rel leads on digits 1, 7 and 9, G's layers on
    the seven others); thought of after that round, and on the checkpoints at hand no better than x_dgx_rel
    (tied on digits 5-9, behind on digit 1). Reads the per-layer distances with the ink beside them (N, L + 1)."""
    reads = "layers_ink"

    @staticmethod
    def _parts(layers_ink):
        layers, ink = layers_ink[:, :-1], layers_ink[:, -1]
        return layers, np.sqrt(layers[:, 0]) / np.maximum(ink, 1e-6)

    def fit(self, layers_ink):
        layers, relative = self._parts(np.asarray(layers_ink, np.float64))
        return dict(StdSap().fit(layers), relative_mean=np.maximum(relative.mean(), 1e-12))

    def score(self, layers_ink, stats):
        layers, relative = self._parts(np.asarray(layers_ink, np.float64))
        return 0.5 * (layers / stats["layer_means"]).mean(1) + 0.5 * relative / stats["relative_mean"]


class Nap:
    """RaPP's NAP: the pair's stacked layer differences d (N, D) centred by the training normals' mean and
    projected on the right singular vectors of the normals' centred matrix, each coordinate divided by its
    singular value; the squared norm. With fewer normals than features the whitening is truncated to the
    `components` largest singular values and regularised: each coordinate is divided by sqrt(s^2 + lambda)
    and the part of d outside those directions counts as ||r||^2 / lambda, where lambda = shrink times the
    mean s^2 of the kept components (shrink 0: RaPP's form on the kept directions). Singular values below
    rtol times the largest are dropped (their directions carry no variance of the normals)."""
    reads = "diffs"

    def __init__(self, components=0, shrink=0.0, rtol=1e-5):
        self.components, self.shrink, self.rtol = components, shrink, rtol

    def fit(self, diffs):
        """Mean, kept right singular vectors (D, k), their singular values and lambda. Where `components` is
        far below min(N, D), scikit-learn's randomized SVD in float32 (the paper network, D = 15,368, 2,000
        normals, 128 components: the matrix 123 MB, the saved factors 8 MB per pair, about 3 s on one AVX2
        core; centring it in float64 first cost as much again); else NumPy's thin SVD in float64 (all 2,000
        components: about 250 MB and a minute or more)."""
        diffs = np.asarray(diffs)
        mean = diffs.mean(0, dtype=np.float64)
        k = min(diffs.shape) if not self.components else min(self.components, *diffs.shape)
        if k < min(diffs.shape) // 2:   # centred in float32 (the SVD's precision): no float64 copy of the matrix
            from sklearn.utils.extmath import randomized_svd
            centred = np.asarray(diffs, np.float32) - mean.astype(np.float32)
            _, s, vt = randomized_svd(centred, k, random_state=0)
            s, vt = s.astype(np.float64), vt.astype(np.float64)
        else:
            _, s, vt = np.linalg.svd(np.asarray(diffs, np.float64) - mean, full_matrices=False)
            s, vt = s[:k], vt[:k]
        keep = s > self.rtol * s[0] if len(s) and s[0] > 0 else np.zeros(len(s), bool)
        s, vt = s[keep], vt[keep]
        lam = self.shrink * float(np.mean(s ** 2)) if len(s) else 0.0
        return {"mean": mean.astype(np.float32), "vectors": vt.T.astype(np.float32),
                "singular_values": s.astype(np.float64), "shrink_lambda": np.float64(lam)}

    def score(self, diffs, stats):
        """The projection in float32, as the graph computes the differences (five times faster than float64
        on the paper network's 15,368 features: NAP was 40% of the time of a look at every score; the
        coordinates differ from float64's by about 1e-6 relative), the whitening and the sum in float64."""
        centred = np.asarray(diffs, np.float32) - stats["mean"]
        coords = (centred @ stats["vectors"]).astype(np.float64)
        lam = float(stats["shrink_lambda"])
        out = (coords ** 2 / (stats["singular_values"] ** 2 + lam)).sum(1)
        if lam > 0:
            residual = np.maximum(np.square(centred, dtype=np.float64).sum(1) - (coords ** 2).sum(1), 0.0)
            out = out + residual / lam
        return out


def fitted_score(kind, model_config):
    """The FITTED score object of a kind with the model's settings (None for a LAYERWISE kind)."""
    if kind == "stdsap":
        return StdSap()
    if kind == "stdmax":
        return StdMax()
    if kind == "nap":
        return Nap(model_config.nap_components, model_config.nap_shrink)
    if kind == "mix":
        return Mix()
    return None


FITTED = ("stdsap", "stdmax", "nap", "mix")
assert set(LAYERWISE) | set(FITTED) == set(HIDDEN_KINDS)


FIT_SEED = 20190218   # the fit's subsample of training normals: the same images whatever --seed is


def fit_sample(x_train, n):
    """The training normals a fit reads: n of them drawn without replacement by FIT_SEED (all where there are
    fewer), in their order in x_train. Training normals only: the caller passes the train split's normals."""
    if n >= len(x_train):
        return x_train
    idx = np.sort(np.random.RandomState(FIT_SEED).choice(len(x_train), n, replace=False))
    return x_train[idx]
