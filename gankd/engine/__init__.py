"""The training loop every method shares: G/D alternation, optimizers, EMA, checkpoints, taps,
the frozen teacher and its cache. The engine never names a method: methods implement the
protocol in ``gankd.engine.method``.
"""
