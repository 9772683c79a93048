# data_pipeline.py: how images are loaded, transformed and batched, as a plain mmengine config.
# The dataset folders come from data.yaml; otxlike fills in `data_root` and the class names
# (from classes.txt in the split folder) at train/eval time.
input_size = 128  # pixels (square); also the size `otxlike build --backbone` checks a backbone at
img_dir = 'images'  # inside each split folder
label_dir = 'labels'  # PNG label maps, same file names as the images

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset', data_root='', data_prefix=dict(img_path=img_dir, seg_map_path=label_dir),
        img_suffix='.png', seg_map_suffix='.png', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='BaseSegDataset', data_root='', data_prefix=dict(img_path=img_dir, seg_map_path=label_dir),
        img_suffix='.png', seg_map_suffix='.png', pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
