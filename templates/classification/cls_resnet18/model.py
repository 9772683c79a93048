# model.py: the model of this otxlike workspace and how it is trained, as a plain mmengine config.
# Edit it freely. `otxlike build --backbone ...` rewrites only `model.backbone` and the in_channels
# of the module that reads the backbone's output (here `model.head`); the rest stays as you left it.
default_scope = 'mmpretrain'

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        # ImageNet weights from mmpretrain's model zoo (configs/resnet/metafile.yml,
        # resnet18_8xb32_in1k); `otxlike train --weights none` trains from random weights.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
            'resnet18_8xb32_in1k_20210831-fbbb1da6.pth',
            prefix='backbone')),
    # otxlike's GlobalAveragePooling is mmpretrain's, also taking the list of maps that some
    # mmdet/mmseg backbones (Swin, PVT, ...) return.
    neck=dict(type='otxlike.GlobalAveragePooling'),
    # `otxlike build --head TYPE` swaps the head (head.yaml); docs/custom.md shows a
    # cosine-similarity head of your own (docs/examples/cosine_head.py).
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=512,
        # Label smoothing 0.1 (mmpretrain LabelSmoothLoss, as its ImageNet recipes): with it and
        # the padded crops of data_pipeline.py the digits reach top-1 >= 99 % from scratch.
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, loss_weight=1.0),
        topk=(1, )),
)

# Training schedule. `otxlike train --epochs N` overrides max_epochs for one run.
max_epochs = 15
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'))
randomness = dict(seed=0)
# Every logged scalar goes to vis_data/scalars.json (otxlike draws curves.png from it) and to
# TensorBoard: tensorboard --logdir outputs
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
