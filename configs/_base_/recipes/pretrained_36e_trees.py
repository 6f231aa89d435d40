# Everything but the model for the pretrained detectors on the tree tiles: the data
# (train / val / test tiles), AP at IoU 0.4 and 0.5:0.95, 36 epochs of AdamW at lr 5e-4
# (chosen on val: benchmarks/accuracy/trees_recipe.py), the CPU runtime. A config adds a model
# base and `num_classes=1`.
_base_ = ['../datasets/trees_voc.py', '../evaluators/voc_ap40_and_range.py', '../schedules/adamw_36e_trees.py',
          '../cpu_runtime.py']
val_evaluator = {{_base_.voc_ap40_and_range}}
test_evaluator = val_evaluator
