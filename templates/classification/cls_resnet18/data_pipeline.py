# data_pipeline.py: how images are loaded, transformed and batched, as a plain mmengine config.
# The dataset folders come from data.yaml; otxlike fills in `data_root` at train/eval time.
input_size = 32  # pixels (square); also the size `otxlike build --backbone` checks a backbone at

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size)),
    # Shifts of up to 4 pixels (black border), as mmpretrain's CIFAR recipe
    # (configs/_base_/datasets/cifar10_bs16.py). No flip: a mirrored digit is another glyph.
    dict(type='RandomCrop', crop_size=input_size, padding=4),
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
    dataset=dict(type='CustomDataset', data_root='', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root='', pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
