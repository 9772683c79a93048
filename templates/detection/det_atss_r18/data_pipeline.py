# data_pipeline.py: how images are loaded, transformed and batched, as a plain mmengine config.
# The dataset folders come from data.yaml; otxlike fills in `data_root`, the class names (from the
# COCO categories) and the evaluator's `ann_file` at train/eval time.
input_size = 128  # pixels (square); also the size `otxlike build --backbone` checks a backbone at
ann_file = 'annotations.json'  # COCO JSON inside each split folder
img_prefix = 'images/'  # image folder inside each split folder, for the JSON's file_name

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset', data_root='', ann_file=ann_file, data_prefix=dict(img=img_prefix),
        filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset', data_root='', ann_file=ann_file, data_prefix=dict(img=img_prefix),
        test_mode=True, pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='CocoMetric', ann_file='', metric='bbox', format_only=False)
test_evaluator = val_evaluator
