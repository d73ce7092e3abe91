"""Detect objects in a video, frame by frame, and write the video with the predictions drawn
(mmdet 3.x demo/video_demo.py arguments).

    python demo/video_demo.py VIDEO CONFIG CHECKPOINT --out OUT.mp4 [--device cpu|cuda]
        [--score-thr 0.3] [--show] [--wait-time 1] [--trust-checkpoint] [--partial-load]

Frames are read with mmcv.VideoReader and predicted with mmdet's DetInferencer (the config's test
pipeline); OUT is written with OpenCV at the input's frame rate and size ('mp4v' codec). At the end
the frames per second of detection are printed. The checkpoint is read with the safe loader and
checked as the image demo checks it. A video OpenCV cannot read stops the run before the model is
built; one that ends before the frame count of its header gives a warning naming it.
"""
import argparse
import logging
import time

import cv2
import mmcv
from mmengine.logging import print_log
from mmengine.utils import track_iter_progress

from image_demo import build_inferencer  # demo/ is on sys.path when run as a script


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Detect objects in a video')
    parser.add_argument('video', help='video file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda if available)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='bbox score threshold')
    parser.add_argument('--out', help='output video file (.mp4)')
    parser.add_argument('--show', action='store_true', help='show the video in a window')
    parser.add_argument('--wait-time', type=float, default=1,
                        help='seconds each frame is shown with --show')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint whose pickle needs more than tensors and plain '
                             'data (it may run code): only for files you trust')
    parser.add_argument('--partial-load', action='store_true',
                        help='load the checkpoint tensors that fit the model and log the rest')
    args = parser.parse_args(argv)
    if not (args.out or args.show):
        parser.error('say what to do with the drawn video: --out OUT.mp4 and/or --show')
    return args


def open_video(path):
    """mmcv's VideoReader on ``path``.

    Raises:
        FileNotFoundError: no such file.
        SystemExit: OpenCV cannot read it (damaged, or not a video).
    """
    reader = mmcv.VideoReader(path)
    if not (reader.opened and reader.width and reader.height and reader.fps > 0):
        raise SystemExit(f'error: cannot read the input video {path}: OpenCV finds no frames of '
                         'known size and rate in it (damaged, cut short, or not a video file?)')
    return reader


def main(argv=None):
    args = parse_args(argv)
    reader = open_video(args.video)
    inferencer = build_inferencer(args.config, args.checkpoint, args.device,
                                  trust=args.trust_checkpoint, partial_load=args.partial_load or None)
    inferencer.show_progress = False  # one bar over the frames instead of one per frame
    visualizer = inferencer.visualizer
    writer = None
    if args.out:
        writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*'mp4v'), reader.fps,
                                 (reader.width, reader.height))
        if not writer.isOpened():
            raise SystemExit(f'error: OpenCV cannot write the output video {args.out} (its '
                             'folder, or a codec for its suffix?)')
    frames, seconds = 0, 0.0
    for frame in track_iter_progress((reader, len(reader))):  # BGR, as the test pipeline reads
        start = time.perf_counter()
        prediction = inferencer(frame, return_datasamples=True)['predictions'][0]
        seconds += time.perf_counter() - start
        frames += 1
        visualizer.add_datasample('frame', mmcv.bgr2rgb(frame), prediction, draw_gt=False,
                                  show=args.show, wait_time=args.wait_time,
                                  pred_score_thr=args.score_thr)
        if writer is not None:
            writer.write(mmcv.rgb2bgr(visualizer.get_image()))
    if writer is not None:
        writer.release()
    if frames < len(reader):
        print_log(f'{args.video}: {frames} of the {len(reader)} frames its header declares could '
                  'be decoded (damaged or cut short?)', logger='current', level=logging.WARNING)
    fps = frames / seconds if seconds else 0.0
    print(f'{frames} frames, detection at {fps:.2f} frames per second'
          + (f'; drawn video: {args.out}' if args.out else ''))
    return fps


if __name__ == '__main__':
    main()
