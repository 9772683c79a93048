# data_pipeline.py: how images are loaded, transformed and batched, as a plain mmengine config.
# The dataset comes from data.yaml: otxlike converts each split to an OpenMMLab 2.0 annotation
# file (image path + label list) for mmpretrain's MultiLabelDataset at train/eval time.
input_size = 32  # pixels (square); also the size `otxlike build --backbone` checks a backbone at

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size)),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MultiLabelDataset', data_root='', ann_file='', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MultiLabelDataset', data_root='', ann_file='', pipeline=test_pipeline),
)
test_dataloader = val_dataloader

# mAP over classes (threshold-free) and precision / recall / F1 at the head's threshold 0.5.
val_evaluator = [
    dict(type='AveragePrecision'),
    dict(type='MultiLabelMetric', thr=0.5, average='macro'),
]
test_evaluator = val_evaluator
