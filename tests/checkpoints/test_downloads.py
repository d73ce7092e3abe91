"""Downloads of checkpoint URLs against a local HTTP server that misbehaves: a body cut short or
shorter than its Content-Length, a server trickling bytes, an HTML page served with status 200.
Each is refused naming the URL and the cause, nothing is cached, and a later good download works."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from mmdet_dinov2.checkpoints import DownloadError, load_checkpoint_file
from mmdet_dinov2.checkpoints.remote import cache_path, checkpoint_format


class Server:
    """An HTTP server on 127.0.0.1 whose answer ``behaviour`` (a key of ``answers``) chooses."""

    def __init__(self, body):
        self.body, self.behaviour = body, 'whole'
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                getattr(server, server.behaviour)(self)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/model.pth'

    def _head(self, handler, length, content_type='application/octet-stream'):
        handler.send_response(200)
        handler.send_header('Content-Type', content_type)
        handler.send_header('Content-Length', str(length))
        handler.end_headers()

    def whole(self, handler):
        self._head(handler, len(self.body))
        handler.wfile.write(self.body)

    def cut_short(self, handler):  # the connection drops half-way
        self._head(handler, len(self.body))
        handler.wfile.write(self.body[:len(self.body) // 2])
        handler.close_connection = True

    def trickle(self, handler):  # one byte every 2 s, as long as the client listens
        self._head(handler, len(self.body))
        try:
            for byte in self.body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(2)
        except OSError:
            pass

    def html(self, handler):
        page = b'<!DOCTYPE html><html><body>Please sign in</body></html>'
        self._head(handler, len(page), 'text/html')
        handler.wfile.write(page)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    torch.save({'w': torch.arange(1000.0)}, tmp_path / 'model.pth')
    with Server((tmp_path / 'model.pth').read_bytes()) as server:
        yield server


def assert_nothing_cached(url):
    folder = cache_path(url).parent
    assert not cache_path(url).exists()
    assert not [p for p in folder.iterdir() if cache_path(url).name in p.name] \
        if folder.is_dir() else True


def test_a_download_cut_short_is_refused_and_not_cached(server):
    server.behaviour = 'cut_short'
    half, whole = len(server.body) // 2, len(server.body)
    with pytest.raises(DownloadError, match=f'{server.url}: the connection ended after {half:,} '
                                            f'of {whole:,} bytes'):
        load_checkpoint_file(server.url)
    assert_nothing_cached(server.url)
    server.behaviour = 'whole'  # the retry downloads again
    assert torch.equal(load_checkpoint_file(server.url)['w'], torch.arange(1000.0))


def test_a_trickling_server_fails_within_the_deadline(server, monkeypatch):
    server.behaviour = 'trickle'
    monkeypatch.setenv('MMDET_DINOV2_DOWNLOAD_DEADLINE', '1')  # the socket timeout stays 60 s
    start = time.monotonic()
    with pytest.raises(DownloadError, match=f'{server.url}: not downloaded within 1 s .*'
                                            'MMDET_DINOV2_DOWNLOAD_DEADLINE'):
        load_checkpoint_file(server.url)
    assert time.monotonic() - start < 1.9  # before the server's second byte
    assert_nothing_cached(server.url)


def test_a_silent_server_fails_within_the_deadline_leaving_no_file(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(1)  # accepts the connection, never answers
    url = f'http://127.0.0.1:{silent.getsockname()[1]}/model.pth'
    monkeypatch.setenv('MMDET_DINOV2_DOWNLOAD_DEADLINE', '0.5')
    try:
        with pytest.raises(DownloadError, match='not downloaded within 0.5 s'):
            load_checkpoint_file(url)
        time.sleep(0.5)  # the transfer thread is still waiting: it must not create a file later
        assert_nothing_cached(url)
    finally:
        silent.close()


def test_an_html_page_is_no_checkpoint(server):
    server.behaviour = 'html'
    with pytest.raises(DownloadError) as error:
        load_checkpoint_file(server.url)
    message = str(error.value)
    assert f'{server.url} is not a checkpoint: the server sent 55 bytes of text/html' in message
    assert "b'<!DOCTYPE html>" in message and 'weights_only' not in message
    assert_nothing_cached(server.url)


@pytest.mark.parametrize('value', ['0', '-3', 'soon'])
def test_a_deadline_that_is_no_positive_number_is_named(server, monkeypatch, value):
    monkeypatch.setenv('MMDET_DINOV2_DOWNLOAD_DEADLINE', value)
    with pytest.raises(ValueError, match=f"MMDET_DINOV2_DOWNLOAD_DEADLINE={value!r}: give a "
                                         'positive number of seconds'):
        load_checkpoint_file(server.url)


def test_the_formats_that_count_as_checkpoints(tmp_path):
    from safetensors.torch import save_file
    torch.save({'w': torch.ones(1)}, tmp_path / 'zip.pth')
    torch.save({'w': torch.ones(1)}, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    save_file({'w': torch.ones(1)}, tmp_path / 'w.safetensors')
    heads = {name: (tmp_path / name).read_bytes()[:64]
             for name in ('zip.pth', 'legacy.pth', 'w.safetensors')}
    assert [checkpoint_format(head) for head in heads.values()] == ['zip', 'pickle', 'safetensors']
    for text in (b'<html>', b'\n\n<!doctype html>', b'{"error": "not found"}', b'', b'Not Found'):
        assert checkpoint_format(text) is None
