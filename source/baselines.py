"""Classic anomaly detectors fitted on the same normal training images that ADAE sees."""
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM

# Settings fixed in advance (no tuning on any split): common defaults for MNIST-sized pixels.
PCA_VARIANCE = 0.90      # components that keep 90% of the training variance
KNN_K = 5                # mean distance to the 5 nearest training images
OCSVM_NU = 0.1
# An RBF One-Class SVM's fit grows worse than quadratically with the training set; the paper's protocol
# trains on ~54,000 images. Every method but OC-SVM sees all of them; OC-SVM sees a fixed, seeded
# subsample of at most this many (fixed before any result was looked at, recorded in summary.json).
OCSVM_MAX_TRAIN = 10000
SEED = 0   # the one seed of the detectors (OC-SVM's subsample, Isolation Forest): none depends on a run's seed


def mean_image_distance(x_train, x_test):
    """Euclidean distance to the mean normal training image: the template baseline, which is what the
    reconstruction error of an untrained autoencoder measures. Every run reports it."""
    return np.linalg.norm(x_test - x_train.mean(axis=0), axis=1)


def pca_error(x_train, x_test):
    """Reconstruction error of a PCA fitted on the normal training images."""
    pca = PCA(n_components=PCA_VARIANCE, svd_solver="full").fit(x_train)
    recon = pca.inverse_transform(pca.transform(x_test))
    return np.linalg.norm(x_test - recon, axis=1)


def knn_distance(x_train, x_test):
    """Mean Euclidean distance to the k nearest normal training images."""
    nn = NearestNeighbors(n_neighbors=min(KNN_K, len(x_train))).fit(x_train)
    return nn.kneighbors(x_test)[0].mean(axis=1)


def subsample(x, limit, seed=SEED):
    """At most `limit` rows of x, chosen with a fixed seed (all of them, in order, when x is small enough)."""
    if len(x) <= limit:
        return x
    return x[np.sort(np.random.RandomState(seed).choice(len(x), limit, replace=False))]


def ocsvm(x_train, x_test):
    """Negative decision function of an RBF One-Class SVM fitted on at most OCSVM_MAX_TRAIN images."""
    model = OneClassSVM(kernel="rbf", gamma="scale", nu=OCSVM_NU).fit(subsample(x_train, OCSVM_MAX_TRAIN))
    return -model.decision_function(x_test)


def isolation_forest(x_train, x_test):
    """Negative score_samples of an Isolation Forest (higher = more anomalous)."""
    forest = IsolationForest(n_estimators=200, random_state=SEED).fit(x_train)
    return -forest.score_samples(x_test)


TEMPLATE = {"MeanImage": mean_image_distance}
CLASSIC = {"PCA": pca_error, "kNN": knn_distance, "OC-SVM": ocsvm, "IsolationForest": isolation_forest}


def settings(n_train):
    """The fixed settings of the classic detectors for a training set of n_train images."""
    return {"MeanImage": {"note": "L2 distance to the mean normal training image"},
            "PCA": {"variance": PCA_VARIANCE}, "kNN": {"k": KNN_K},
            "OC-SVM": {"nu": OCSVM_NU, "kernel": "rbf", "gamma": "scale",
                       "train_images": min(n_train, OCSVM_MAX_TRAIN), "subsample_seed": SEED},
            "IsolationForest": {"n_estimators": 200, "seed": SEED}}


def classic_scores(x_train, x_test, methods=CLASSIC):
    """Fit every classic detector on x_train and score x_test (images flattened); return
    ({name: scores}, {name: seconds to fit and score})."""
    flat_train = x_train.reshape(len(x_train), -1).astype(np.float32)
    flat_test = x_test.reshape(len(x_test), -1).astype(np.float32)
    scores, seconds = {}, {}
    for name, fn in methods.items():
        t = time.time()
        scores[name] = np.asarray(fn(flat_train, flat_test), np.float64)
        seconds[name] = time.time() - t
    return scores, seconds
