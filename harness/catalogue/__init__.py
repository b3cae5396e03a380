"""The models: `models.yaml` read and validated (`registry.py`), an entry turned into a build recipe and
a record's model summary (`recipes.py`), params and MACs (`complexity.py`), and ONNX files made
elsewhere (`onnx_files.py`)."""
