"""Detection and instance-segmentation data formats, read into mmdet's ``CocoDataset``.

- ``coco``: COCO JSON (boxes; polygon or RLE masks) and the images it names, in otxlike's layout
  (``<split>/annotations.json`` + ``<split>/images/``) or COCO's own (``annotations/instances_<split>.json``
  + ``<split>/`` or ``images/<split>/``), or any JSON file given with its image folder.
- ``voc``: Pascal VOC (``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``).
- ``yolo``: YOLO text labels (``images/<split>/`` + ``labels/<split>/*.txt`` with ``class cx cy w h``
  normalised to 0..1, or ``class x1 y1 x2 y2 ...`` polygons), class names from ``data.yaml``'s
  ``names`` or a class file.

VOC and YOLO annotations are converted to a COCO JSON in the cache (images stay where they are),
so every detection format trains with the same dataset class and is scored by the same
``CocoMetric`` on the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

from otxlike.data.formats.common import (
    SplitData,
    cached_file,
    check_subset,
    entry_path,
    entry_root,
    find_class_file,
    list_images,
    read_class_file,
    read_subset,
    paired_split_folders,
    relative_id,
    split_of,
    visible,
)
from otxlike.data.images import check_images, image_size, problems_line, skipping_bad
from otxlike.errors import OtxlikeError

EDGE_TOLERANCE = 1.0  # pixels a box may pass the image edge (rounding of converted annotations)


def _is_box(box) -> bool:
    """A COCO ``[x, y, width, height]`` of four numbers."""
    return isinstance(box, (list, tuple)) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)


def _loads_masks(dataset: dict) -> bool:
    """True if the dataset's pipeline loads instance masks (``LoadAnnotations(with_mask=True)``)."""
    return any(isinstance(t, dict) and t.get("type") == "LoadAnnotations" and t.get("with_mask")
               for t in dataset.get("pipeline") or [])


def coco_classes(categories: list[dict]) -> list[str]:
    """Class names in label order as mmdet's ``CocoDataset`` assigns labels: the order of the
    JSON's ``categories`` list, not of their ids.

    ``mmdet/datasets/coco.py`` (``load_data_list``) takes ``cat_ids = coco.get_cat_ids(cat_names=classes)``
    and ``cat2label = {cat_id: i for i, cat_id in enumerate(cat_ids)}``; pycocotools' ``getCatIds``
    (``pycocotools/coco.py``) returns the ids of the categories whose name is in ``classes`` in
    the order of ``dataset['categories']``, whatever order ``classes`` has. So label ``i`` is the
    ``i``-th category of the file, and its name must be ``classes[i]``. ``CocoMetric``
    (``mmdet/evaluation/metrics/coco_metric.py``) maps labels back to ids the same way.

    Args:
        categories: The COCO file's ``categories`` (``id``, ``name``), in file order.

    Returns:
        One name per category, in file order.
    """
    return [str(c["name"]) for c in categories]


def _fill_sizes_and_areas(images: list[dict], anns: list[dict], sizes: dict) -> bool:
    """Fill in, in place, what mmdet and pycocotools read but a COCO file may leave out; True if
    anything was filled (the caller then writes the completed file to the cache, never over the
    user's file).

    - an image's ``width`` / ``height``: read from the image file (``sizes``: ``{image id: (w, h)}``
      in pixels); mmdet's ``CocoDataset.parse_data_info`` indexes ``img_info['width']``.
    - an annotation's ``area`` (square pixels): the box's ``w * h``, as otxlike's VOC and YOLO
      conversions (and e.g. Ultralytics' and Roboflow's box exports) write it. COCO's own files hold
      the mask area for segmented objects; here only the ``small`` / ``medium`` / ``large`` bins
      of ``COCOeval`` use it (``pycocotools/cocoeval.py`` ``evaluateImg`` reads ``g['area']`` and
      raises ``KeyError`` without it; ``mmdet/datasets/coco.py`` drops annotations whose
      ``area`` is not > 0). An ``area`` that is not a number counts as missing.

    Expects checked annotations (every ``bbox`` four numbers, every ``image_id`` in ``sizes``).
    """
    filled = False
    for i, img in enumerate(images):
        if img.get("width") is None or img.get("height") is None:
            width, height = sizes[img["id"]]
            images[i] = {**img, "width": width, "height": height}
            filled = True
    for i, a in enumerate(anns):
        area = a.get("area")
        if not isinstance(area, (int, float)) or isinstance(area, bool):
            anns[i] = {**a, "area": a["bbox"][2] * a["bbox"][3]}
            filled = True
    return filled


def coco_split(coco: dict, source: Path, img_dir: Path, entry: dict, dataset: dict, note: str,
               converted: bool) -> SplitData:
    """Check a COCO dict (as read, or converted from another format) and hand it to ``CocoDataset``.

    Args:
        coco: ``images`` / ``annotations`` / ``categories``; ``file_name`` relative to ``img_dir``.
        source: The file it came from (for messages; the evaluator's file unless converted).
        img_dir: The folder the ``file_name`` values are relative to.
        entry: The split's data.yaml mapping (``subset`` is applied here).
        dataset: The dataset config (its pipeline says whether masks are needed).
        note: What was read, for the user.
        converted: True if ``coco`` is not the content of ``source`` (then it is written to the cache).

    Returns:
        The split, its classes in the order of ``categories`` (:func:`coco_classes`). Annotations
        without ``area`` and images without ``width`` / ``height`` are completed
        (:func:`_fill_sizes_and_areas`) in a copy written to the cache; the user's file is never
        changed.

    Raises:
        OtxlikeError: No categories / images / annotations, ids that do not resolve, missing or
            undecodable images, image sizes that differ from the JSON's, boxes that are not four
            numbers, have a non-positive size or lie outside their image, or (instance
            segmentation) annotations without ``segmentation``; one line naming the first ones.
    """
    if not isinstance(coco, dict):
        raise OtxlikeError(f"COCO file {source} must hold an object with images, annotations, categories")
    images, anns, cats = (coco.get(k) or [] for k in ("images", "annotations", "categories"))
    if not cats:
        raise OtxlikeError(f"COCO file {source} has no categories", "add the class list as 'categories'")
    seen: dict = {}
    for c in cats:
        seen.setdefault(str(c.get("name")), []).append(c.get("id"))
    shared = {name: ids for name, ids in seen.items() if len(ids) > 1}
    if shared:  # mmdet finds a label's category by name (pycocotools getCatIds(catNms=...))
        name, ids = next(iter(shared.items()))
        raise OtxlikeError(f"COCO file {source}: categories {', '.join(map(str, ids))} share the name '{name}'"
                           + (f" ({len(shared)} names are shared)" if len(shared) > 1 else ""),
                           "give each category its own name, or merge them into one id")
    subset = read_subset(entry)
    if subset is not None:
        check_subset(subset, [str(img.get("file_name")) for img in images], img_dir)
        images = [img for img in images if str(img.get("file_name")) in subset]
        keep = {img["id"] for img in images}
        anns = [a for a in anns if a.get("image_id") in keep]
        coco = {**coco, "images": images, "annotations": anns}
        converted = True
    if not images:
        raise OtxlikeError(f"{source} has no images (empty split)", "give a split with images")
    if not anns:
        raise OtxlikeError(f"{source} has no annotations (empty split)", "give a labelled split")
    by_id = {img.get("id"): img for img in images}
    cat_ids = {c.get("id") for c in cats}
    bad_img = sum(a.get("image_id") not in by_id for a in anns)
    bad_cat = {a.get("category_id") for a in anns} - cat_ids
    if bad_img:
        raise OtxlikeError(f"{source}: {bad_img} annotations refer to image ids that are not in 'images'")
    if bad_cat:
        raise OtxlikeError(f"{source}: annotations use category ids {sorted(bad_cat, key=str)} missing from 'categories'")
    missing = [str(img.get("file_name")) for img in images if not (img_dir / str(img.get("file_name"))).is_file()]
    if missing and not skipping_bad():
        raise OtxlikeError(f"{len(missing)} of {len(images)} images named in {source} are missing under {img_dir}, "
                           f"e.g. {missing[0]}", "fix the file names or the image folder")
    files = [img_dir / str(img["file_name"]) for img in images]
    bad = check_images(files, img_dir)
    if bad:  # --skip-bad-images: the images and their annotations are left out
        images = [img for img, f in zip(images, files) if f not in bad]
        keep = {img["id"] for img in images}
        anns = [a for a in anns if a.get("image_id") in keep]
        coco, converted = {**coco, "images": images, "annotations": anns}, True
        by_id = {img.get("id"): img for img in images}
        files = [img_dir / str(img["file_name"]) for img in images]
        if not images or not anns:
            raise OtxlikeError(f"{source}: no readable, annotated image is left", "replace the unreadable images")
    sizes = {}
    wrong = []
    for img, path in zip(images, files):
        width, height = image_size(path)
        sizes[img["id"]] = (width, height)
        if (img.get("width"), img.get("height")) not in {(width, height), (None, None)}:
            wrong.append(f"{img['file_name']} is {width}x{height}, the file says {img.get('width')}x{img.get('height')}")
    if wrong:
        raise OtxlikeError(f"{source}: " + problems_line("images differ in size from their annotations", wrong),
                           "fix 'width'/'height' in the annotations (or the images); sizes are after the "
                           "EXIF orientation, as training reads the images")
    bad = []
    needs_masks = _loads_masks(dataset)
    for a in anns:
        box = a.get("bbox")
        where, image = f"annotation {a.get('id')}", f" (image {by_id[a['image_id']].get('file_name')})"
        if not _is_box(box):
            bad.append(f"{where} has bbox {box!r}{image}")
            continue
        x, y, w, h = box
        width, height = sizes[a["image_id"]]
        if w <= 0 or h <= 0:
            bad.append(f"{where} has a box of size {w}x{h}{image}")
        elif x < -EDGE_TOLERANCE or y < -EDGE_TOLERANCE or x + w > width + EDGE_TOLERANCE \
                or y + h > height + EDGE_TOLERANCE:
            bad.append(f"{where} has box [{x}, {y}, {w}, {h}] outside its {width}x{height} image{image}")
        elif needs_masks and not a.get("segmentation"):
            bad.append(f"{where} has no segmentation{image}")
    if bad:
        raise OtxlikeError(f"{source}: " + problems_line("annotations are malformed", bad),
                           "a bbox is [x, y, width, height] in pixels inside the image, width and height > 0; "
                           "instance segmentation needs a polygon or RLE 'segmentation' on every annotation")
    filled = _fill_sizes_and_areas(images, anns, sizes)
    if filled:
        coco, converted = {**coco, "images": images, "annotations": anns}, True
    ann_file = cached_file("coco", ".json", json.dumps(coco)) if converted else source
    classes = coco_classes(cats)
    return SplitData(
        classes=classes, images=len(images), annotations=len(anns),
        items=[str(img["file_name"]) for img in images],
        dataset={"ann_file": str(ann_file), "data_prefix": {"img": str(img_dir) + "/"}},
        eval_ann_file=str(ann_file), note=note,
    )


def _read_json(path: Path):
    """The content of a JSON file.

    Raises:
        OtxlikeError: If it cannot be read or is not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OtxlikeError(f"COCO file {path} cannot be read ({exc.strerror})",
                           "each split needs its COCO JSON (annotations.json, or annotations/instances_<split>.json)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtxlikeError(f"COCO file {path} is not valid JSON ({exc})") from exc


class CocoFormat:
    """COCO JSON with the images it names."""

    name = "coco"
    summary = "COCO JSON (boxes, polygon / RLE masks) + images"
    layout = ("DATA/\n  annotations/ instances_train.json  instances_val.json\n"
              "  train/ (or images/train/) ...   val/ (or images/val/) ...\n"
              "or otxlike's: DATA/train/ annotations.json images/   DATA/val/ ...")

    @staticmethod
    def _image_dir(json_path: Path, coco: dict) -> Path | None:
        """The folder of the JSON's images among the usual places: the first that holds its first
        image, else the first that exists (the check then names the missing files)."""
        first = next((img.get("file_name") for img in coco.get("images") or [] if isinstance(img, dict)), None)
        stem = json_path.stem.split("_", 1)[-1]  # instances_train2017 -> train2017
        parent, grand = json_path.parent, json_path.parent.parent
        split = split_of(json_path.stem) or ""
        places = [parent / "images", parent, grand / "images" / stem, grand / stem, grand / "images" / split,
                  grand / split, grand / "images", grand]
        if json_path.name == "annotations.json":  # otxlike's own layout: <split>/images/
            places = places[:2]
        found = next((f for f in places if first and (f / str(first)).is_file()), None)
        return found or next((f for f in places if f.is_dir() and f != parent and f != grand), None)

    def _entry(self, json_path: Path, root: Path) -> dict | None:
        try:
            coco = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
            return None
        img_dir = self._image_dir(json_path, coco)
        if img_dir is None:
            return None
        return {"data_root": str(root), "ann_file": relative_id(json_path, root), "img_prefix": relative_id(img_dir, root)}

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits at ``path``: ``<split>/annotations.json``, ``annotations/*.json``, or the JSON given."""
        if path.is_file():
            entry = self._entry(path, path.parent) if path.suffix == ".json" else None
            return {split_of(path.stem) or "all": entry} if entry else None
        if not path.is_dir():
            return None
        if (path / "annotations.json").is_file():
            entry = self._entry(path / "annotations.json", path)
            return {"all": entry} if entry else None
        splits = {}
        for d in visible(path.iterdir()):
            if d.is_dir() and split_of(d.name) and (d / "annotations.json").is_file():
                entry = self._entry(d / "annotations.json", d)
                if entry:
                    splits[split_of(d.name)] = entry
        for f in visible((path / "annotations").glob("*.json")) if (path / "annotations").is_dir() else []:
            if split_of(f.stem) and split_of(f.stem) not in splits:
                entry = self._entry(f, path)
                if entry:
                    splits[split_of(f.stem)] = entry
        return splits or None

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split's COCO JSON (:func:`coco_split`).

        Raises:
            OtxlikeError: See :func:`coco_split`.
        """
        root = entry_root(entry)
        default_prefix = (dataset.get("data_prefix") or {}).get("img", "images/") if isinstance(
            dataset.get("data_prefix"), dict) else "images/"
        ann_path = entry_path(entry, "ann_file", dataset.get("ann_file") or "annotations.json")
        img_dir = entry_path(entry, "img_prefix", default_prefix)
        return coco_split(_read_json(ann_path), ann_path, img_dir, entry, dataset,
                          f"COCO {relative_id(ann_path, root)}", converted=False)


class VocFormat:
    """Pascal VOC XML boxes."""

    name = "voc"
    summary = "Pascal VOC: Annotations/*.xml + JPEGImages/ + ImageSets/Main/<split>.txt"
    layout = ("DATA/ (e.g. VOCdevkit/VOC2007)\n  Annotations/  000001.xml ...\n  JPEGImages/   000001.jpg ...\n"
              "  ImageSets/Main/  train.txt  val.txt  (image ids; optional)\n  classes.txt  (optional)")

    @staticmethod
    def _root(path: Path) -> Path | None:
        if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
            return path
        inner = sorted(p for p in path.glob("*/") if (p / "Annotations").is_dir()) + sorted(
            p for p in path.glob("*/*/") if (p / "Annotations").is_dir())
        return inner[0] if len(inner) == 1 else None

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``ImageSets/Main/{train,val,test}.txt`` (else one split of all XML files)."""
        root = self._root(path) if path.is_dir() else None
        if root is None or not visible((root / "Annotations").glob("*.xml")):
            return None
        lists = root / "ImageSets" / "Main"
        splits = {s: {"data_root": str(root), "split_file": f"ImageSets/Main/{s}.txt"}
                  for s in ("train", "val", "test") if (lists / f"{s}.txt").is_file()}
        if not splits and (lists / "trainval.txt").is_file():
            splits = {"all": {"data_root": str(root), "split_file": "ImageSets/Main/trainval.txt"}}
        return splits or {"all": {"data_root": str(root)}}

    @staticmethod
    def _parse(xml_path: Path):
        """``(filename, width, height, objects)`` of one VOC XML; objects as ``(name, difficult, box)``."""
        import xml.etree.ElementTree as ET

        try:
            tree = ET.parse(xml_path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise OtxlikeError(f"VOC file {xml_path} cannot be read ({exc})") from exc
        size = tree.find("size")
        try:
            width, height = (int(float(size.find(k).text)) for k in ("width", "height")) if size is not None else (None, None)
            objects = []
            for obj in tree.findall("object"):
                box = obj.find("bndbox")
                difficult = obj.find("difficult")
                objects.append((obj.find("name").text.strip(), int(difficult is not None and difficult.text.strip() == "1"),
                                [float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]))
        except (AttributeError, TypeError, ValueError) as exc:
            raise OtxlikeError(f"VOC file {xml_path} is malformed: an object lacks name / bndbox numbers, "
                               f"or size is not numbers", "each <object> needs <name> and <bndbox> with "
                               "xmin, ymin, xmax, ymax") from exc
        name = tree.findtext("filename") or f"{xml_path.stem}.jpg"
        return name.strip(), width, height, objects

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Convert the split's XML files to COCO (class order: the class file, else the sorted names
        of every XML in ``Annotations/``, so all splits agree) and check it (:func:`coco_split`).

        Boxes follow mmdet's reading of VOC (``mmdet/datasets/xml_style.py``: 1-based corners, 1
        subtracted); ``difficult`` objects become COCO ``iscrowd`` (ignored in training and scoring).

        Raises:
            OtxlikeError: An unreadable or malformed XML, ids of the split list without XML, and
                everything :func:`coco_split` checks.
        """
        root = entry_root(entry)
        xml_dir = root / "Annotations"
        if entry.get("split_file"):
            split_file = entry_path(entry, "split_file", "")
            try:
                ids = [line.split()[0] for line in split_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            except OSError as exc:
                raise OtxlikeError(f"VOC split list {split_file} cannot be read ({exc.strerror})") from exc
        else:
            ids = [p.stem for p in visible(xml_dir.glob("*.xml"))]
        missing = [i for i in ids if not (xml_dir / f"{i}.xml").is_file()]
        if missing:
            raise OtxlikeError(f"{len(missing)} ids of the split have no Annotations/<id>.xml, e.g. {missing[0]}")
        parsed = {i: self._parse(xml_dir / f"{i}.xml") for i in ids}
        class_file = find_class_file(root)
        if entry.get("classes") or class_file:
            classes = read_class_file(Path(entry.get("classes") or class_file))
        else:
            classes = sorted({obj[0] for p in visible(xml_dir.glob("*.xml")) for obj in self._parse(p)[3]})
        index = {c: i + 1 for i, c in enumerate(classes)}
        unknown = sorted({o[0] for *_, objs in parsed.values() for o in objs} - set(index))
        if unknown:
            raise OtxlikeError(f"{root}: objects named {unknown[:5]} are not in {class_file}", "add them to the class file")
        coco = {"images": [], "annotations": [], "categories": [{"id": i, "name": c} for c, i in index.items()]}
        for n, (i, (name, width, height, objects)) in enumerate(parsed.items(), 1):
            coco["images"].append({"id": n, "file_name": name, **({"width": width, "height": height} if width else {})})
            for label, difficult, (x1, y1, x2, y2) in objects:
                x1, y1, x2, y2 = x1 - 1, y1 - 1, x2 - 1, y2 - 1  # mmdet xml_style.py minus_one
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": n,
                                            "category_id": index[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                            "area": max(x2 - x1, 0) * max(y2 - y1, 0), "iscrowd": difficult})
        return coco_split(coco, xml_dir, root / "JPEGImages", entry, dataset, "Pascal VOC XML (converted to COCO)",
                          converted=True)


class YoloFormat:
    """YOLO text labels beside an image folder."""

    name = "yolo"
    summary = "YOLO: images/<split>/ + labels/<split>/*.txt ('class cx cy w h' in 0..1, or polygons)"
    layout = ("DATA/\n  data.yaml (names: [...]) or classes.txt\n  images/train/ 0001.jpg ...   images/val/ ...\n"
              "  labels/train/ 0001.txt ...   labels/val/ ...")

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``images/<split>/`` with ``labels/<split>/`` (else ``images/`` + ``labels/``)."""
        if not path.is_dir() or not (path / "images").is_dir() or not (path / "labels").is_dir():
            return None
        splits = paired_split_folders(path, "images", "labels") or {}
        if not splits and visible((path / "labels").glob("*.txt")):
            splits = {"all": {"data_root": str(path), "img_prefix": "images", "label_prefix": "labels"}}
        return splits or None

    @staticmethod
    def _classes(entry: dict, root: Path) -> list[str]:
        import yaml

        if entry.get("classes"):
            return read_class_file(Path(entry["classes"]))
        for name in ("data.yaml", "dataset.yaml"):
            if (root / name).is_file():
                try:
                    names = (yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}).get("names")
                except (yaml.YAMLError, AttributeError) as exc:
                    raise OtxlikeError(f"{root / name} is not a YAML mapping with 'names' ({exc})".replace("\n", " ")) from exc
                if isinstance(names, dict):
                    names = [names[k] for k in sorted(names)]
                if isinstance(names, list) and names:
                    return [str(n) for n in names]
        class_file = find_class_file(root)
        if class_file is None:
            raise OtxlikeError(f"YOLO data {root} has no class names",
                               "add data.yaml with 'names: [...]' or classes.txt (one name per line)")
        return read_class_file(class_file)

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Convert the split's label files to COCO and check it (:func:`coco_split`). An image without
        a label file has no objects (YOLO's convention); a polygon line gives a mask and its box.

        Raises:
            OtxlikeError: A line that is not ``class`` + 4 numbers or a polygon, a class index out
                of range, label files without an image, and everything :func:`coco_split` checks.
        """
        root = entry_root(entry)
        img_dir, label_dir = entry_path(entry, "img_prefix", "images"), entry_path(entry, "label_prefix", "labels")
        classes = self._classes(entry, root)
        images = list_images(img_dir)
        stems = {p.stem for p in images}
        orphans = [p.name for p in visible(label_dir.glob("*.txt")) if p.stem not in stems]
        if orphans:
            raise OtxlikeError(f"{len(orphans)} label files in {label_dir} have no image in {img_dir}, e.g. {orphans[0]}",
                               "every labels/<name>.txt needs images/<name>.<ext>")
        bad = check_images(images, img_dir)
        images = [p for p in images if p not in bad]  # --skip-bad-images
        coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)]}
        bad = []
        for n, image in enumerate(images, 1):
            width, height = image_size(image)
            coco["images"].append({"id": n, "file_name": image.name, "width": width, "height": height})
            label_file = label_dir / f"{image.stem}.txt"
            lines = label_file.read_text(encoding="utf-8").splitlines() if label_file.is_file() else []
            for k, line in enumerate(lines, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    cls, values = int(parts[0]), [float(v) for v in parts[1:]]
                except ValueError:
                    bad.append(f"{label_file.name} line {k}: {line!r}")
                    continue
                if not 0 <= cls < len(classes) or not (len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0)):
                    bad.append(f"{label_file.name} line {k}: {line!r}")
                    continue
                ann = {"id": len(coco["annotations"]) + 1, "image_id": n, "category_id": cls + 1, "iscrowd": 0}
                if len(values) == 4:
                    cx, cy, w, h = values[0] * width, values[1] * height, values[2] * width, values[3] * height
                    ann["bbox"] = [cx - w / 2, cy - h / 2, w, h]
                else:
                    xs, ys = [v * width for v in values[0::2]], [v * height for v in values[1::2]]
                    ann["segmentation"] = [[c for xy in zip(xs, ys) for c in xy]]
                    ann["bbox"] = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                ann["area"] = ann["bbox"][2] * ann["bbox"][3]
                coco["annotations"].append(ann)
        if bad:
            raise OtxlikeError(f"{label_dir}: " + problems_line("label lines are malformed", bad),
                               f"each line is 'class cx cy w h' (0..1) or 'class x1 y1 x2 y2 x3 y3 ...', "
                               f"class 0..{len(classes) - 1}")
        return coco_split(coco, label_dir, img_dir, entry, dataset, "YOLO labels (converted to COCO)", converted=True)


FORMATS = (CocoFormat(), VocFormat(), YoloFormat())
