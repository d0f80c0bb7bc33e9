import sys, time, numpy as np, warnings
warnings.simplefilter("ignore")
import nnbackend as nb
rng=np.random.default_rng(0)
out=[]
for be in ("jax","numpy"):
  for N in (1000, 10000):
    for mode,bs in (("batch",None),("minibatch",64)):
      X=rng.random((N,32)).astype('float32'); y=(X.sum(1,keepdims=True)>16).astype('float32')
      m=nb.MLP([32,64,1], backend=be, device="cpu", seed=0)
      kw=dict(mode=mode,lr=0.1, **({"batch_size":bs} if bs else {}))
      m.fit(X,y,epochs=3,**kw)
      ts=[]
      for r in range(5):
        t=time.perf_counter(); h=m.fit(X,y,epochs=60,**kw); ts.append((time.perf_counter()-t)/60)
      print(be, N, mode, h.executor, f"{np.median(ts)*1e6:.0f} us/epoch", getattr(h,"window",None), flush=True)
