"""``edgelstm inspect``: what a .tflite / .onnx file holds, read without TensorFlow."""
