"""The web demo's /animate endpoint, called through gradio_client on loopback."""

import shutil

import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app_url(tiny_files):
    import app

    demo = app.build_demo(app.parse_args(["--config", str(tiny_files[0]), "--checkpoint", str(tiny_files[1]),
                                          "--device", "cpu"]))
    demo.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=None,
                                                   prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def test_animate_endpoint_returns_two_videos(app_url, media, tmp_path):
    from gradio_client import Client, handle_file

    photo, clip = media
    client = Client(app_url, verbose=False)
    video, overlay, status = client.predict(handle_file(str(photo)), handle_file(str(clip)), True, True,
                                            "checkpoint.pth.tar", api_name="/animate")
    assert "12 frames" in status
    for item in (video, overlay):
        path = item["video"] if isinstance(item, dict) else item
        shutil.copy(path, tmp_path / "got.mp4")
        from fomm_space.video import probe
        assert probe(tmp_path / "got.mp4").frame_count >= 11


def test_bad_input_is_an_app_error(app_url, media, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    photo, _ = media
    client = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="still image, not a video"):
        client.predict(handle_file(str(photo)), handle_file(str(photo)), True, True,
                       "checkpoint.pth.tar", api_name="/animate")
