"""The compatibility matrix (:mod:`~otxlike.compat.matrix`, read-only and light) and the end-to-end
check that produces it (:mod:`~otxlike.compat.verify`)."""
