"""gradc on Dask: compiled modules applied to `dask.array` inputs, on a `distributed` cluster or Dask's threads.

The methods of ExprModule and MLPModule hand dask arrays here (gradc/module.py's `_lazy` checks an argument's
type without importing Dask); NumPy inputs never reach this package, so Dask stays an optional extra
(`pip install 'gradc[dask]'`).

- expr.py: expression modules blockwise (forward, grad, value_and_grad, jacobian, hessian, jvp, hvp); the
  gradients of broadcast inputs summed across blocks by a tree reduction in float64.
- mlp.py: an MLP's loss and gradients as exact sums of per-chunk partials; forward and predict blockwise.
- train.py: fit on dask arrays, synchronous data-parallel steps or local epochs with parameter averaging.
- remote.py: how a module reaches a worker: as its source text, compiled once per worker process.
"""
