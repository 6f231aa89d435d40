# Everything but the model for the pretrained detectors on the tree tiles: the data
# (train / val / test tiles), 24 epochs of AdamW at lr 5e-4, the CPU runtime. A config
# adds a model base and `num_classes=1`.
_base_ = ['../datasets/trees_voc.py', '../schedules/adamw_24e_trees.py', '../cpu_runtime.py']
