"""ngspice for analogprop circuits: the shared library (:mod:`.engine`), netlists
(:mod:`.netlist`), batched operating points (:mod:`.solver`) and transients
(:mod:`.transient`)."""
