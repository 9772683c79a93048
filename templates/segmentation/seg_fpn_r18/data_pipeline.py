# data_pipeline.py: how images are loaded, transformed and batched, as a plain mmengine config.
# The dataset folders come from data.yaml; otxlike fills in `data_root` and the class names
# (from classes.txt in the split folder) at train/eval time.
input_size = 128  # pixels (square); also the size `otxlike build --backbone` checks a backbone at
img_dir = 'images'  # inside each split folder
label_dir = 'labels'  # PNG label maps, same file names as the images

# Training augmentation, after mmseg's configs/_base_/datasets/*.py: scale jitter (x0.5..x2), a
# random crop back to input_size (padded with the ignore label 255 where the image is smaller) and
# photometric distortion. No flip: a mirrored digit or letter is not the same class. Measured on the
# digit canvases over 60 epochs (model.py's Lovasz + cross-entropy loss, a GPU): val mIoU 36 % without
# this augmentation (the 200 training canvases learnt by heart), 66 % with it.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(input_size, input_size), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='Pad', size=(input_size, input_size), pad_val=dict(img=0, seg=255)),
    dict(type='PhotoMetricDistortion'),
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
