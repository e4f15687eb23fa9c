"""Files go into the run's home before it starts and come back out safely afterwards."""

from __future__ import annotations

import base64
import concurrent.futures

import pytest

from snekbox.nsjail import NsJail
from snekbox.snekio import FileAttachment, IllegalPathError, ParsingError
from tests.support.engine import RunCode


def paths(result) -> list[str]:
    return [f.path for f in result.files]


def test_input_files_are_written_with_directories(run: RunCode) -> None:
    files = (
        FileAttachment("data.txt", b"top"),
        FileAttachment("nested/deeper/data.txt", b"deep"),
    )
    result = run(
        """
        import os, stat
        print(open('data.txt').read(), open('nested/deeper/data.txt').read())
        print(oct(stat.S_IMODE(os.stat('nested/deeper/data.txt').st_mode)))
        print(oct(stat.S_IMODE(os.stat('nested').st_mode)))
        """,
        files=files,
    )
    assert result.stdout == "top deep\n0o666\n0o777\n"
    assert result.files == []  # unmodified inputs are not echoed


def test_a_file_that_cannot_be_written_fails_the_run(nsjail: NsJail) -> None:
    files = [FileAttachment("dir/file", b""), FileAttachment("dir", b"")]
    result = nsjail.python3(["-c", "print(1)"], files=files)
    assert result.returncode is None
    assert result.stdout == "IsADirectoryError: Failed to create file 'dir'."


def test_input_files_larger_than_the_memfs_fail_the_run(nsjail: NsJail) -> None:
    files = [FileAttachment("big", b"x" * (nsjail.memfs_instance_size + 1))]
    result = nsjail.python3(["-c", "print(1)"], files=files)
    assert result.returncode is None
    assert result.stdout == "OSError: Failed to create file 'big'."


@pytest.mark.parametrize("path", ["/etc/passwd", "..", "../x", "a/../../x", "a/../../../etc"])
def test_input_paths_cant_climb_out(path: str) -> None:
    with pytest.raises(IllegalPathError):
        FileAttachment.from_dict({"path": path, "content": ""})


@pytest.mark.parametrize("path", ["folder/../hm", "backslash\\okay", "a/./b", "ünï.txt"])
def test_input_paths_that_stay_inside_are_fine(path: str) -> None:
    assert FileAttachment.from_dict({"path": path}).path == path


def test_invalid_base64_is_a_parsing_error() -> None:
    with pytest.raises(ParsingError, match="Invalid base64"):
        FileAttachment.from_dict({"path": "x", "content": "not base64!"})


def test_attachment_round_trip() -> None:
    data = {"path": "a/b.bin", "content": base64.b64encode(b"\x00\xff").decode()}
    file = FileAttachment.from_dict(data)
    assert file.as_dict == {**data, "size": 2}


def test_new_and_changed_files_are_returned_sorted(run: RunCode) -> None:
    files = (FileAttachment("keep.txt", b"same"), FileAttachment("change.txt", b"old"))
    result = run(
        """
        import os, time
        time.sleep(0.01)
        open('change.txt', 'w').write('new')
        os.makedirs('out/inner')
        open('out/inner/z.txt', 'w').write('z')
        open('b.txt', 'w').write('b')
        open('a.txt', 'w').write('a')
        """,
        files=files,
    )
    assert result.returncode == 0, result.stdout
    assert paths(result) == ["a.txt", "b.txt", "change.txt", "out/inner/z.txt"]
    assert {f.path: f.content for f in result.files}["change.txt"] == b"new"


def test_hidden_and_underscore_files_are_not_returned(run: RunCode) -> None:
    result = run(
        """
        import os
        os.makedirs('.hidden_dir')
        for name in ['.hidden', '_private', '.hidden_dir/file', 'shown']:
            open(name, 'w').write(name)
        """
    )
    assert paths(result) == ["shown"]


def test_at_most_files_limit_files_are_returned(run: RunCode, nsjail: NsJail) -> None:
    result = run("for i in range(150): open(f'{i:03}.txt', 'w').write(str(i))")
    assert paths(result) == [f"{i:03}.txt" for i in range(nsjail.files_limit)]


def test_sparse_files_count_at_their_full_size(run: RunCode) -> None:
    result = run(
        """
        with open('sparse', 'wb') as f:
            f.truncate(10 * 1024 ** 3)
        open('small', 'w').write('small')
        """
    )
    assert result.returncode == 0, result.stdout
    assert paths(result) == ["small"]


def test_links_count_against_the_read_budget(run: RunCode) -> None:
    result = run(
        """
        import os
        open('big', 'wb').write(b'x' * 20 * 1024 * 1024)
        for i in range(10):
            os.symlink('big', f'link{i}')
        """
    )
    assert result.returncode == 0, result.stdout
    assert sum(f.size for f in result.files) <= 48 * 1024 * 1024
    assert 1 <= len(result.files) <= 2


def test_collection_time_limit(nsjail: NsJail) -> None:
    hurried = NsJail(files_timeout=0.001, files_limit=10_000)
    code = "import os\nfor i in range(3000): open(f'{i}', 'w').write('x')"
    result = hurried.python3(["-c", code])
    assert result.returncode is None
    assert result.stdout == "TimeoutError: Exceeded time limit while parsing attachments"


def test_too_deep_a_tree_fails_collection(run: RunCode) -> None:
    result = run("import os; os.makedirs('/'.join(['d'] * 100)); open('d/x', 'w')")
    assert result.returncode is None
    assert result.stdout == (
        "FileParsingError: Exceeded directory depth limit while parsing attachments"
    )


def test_non_utf8_file_name_fails_collection(run: RunCode) -> None:
    result = run("open(b'bad\\xff', 'w').write('x')")
    assert result.returncode is None
    assert result.stdout == "FileParsingError: invalid bytes in filename while parsing attachments"


# -- escapes through the host-side collection ------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/etc/shadow",
        "/etc/passwd",
        "/proc/self/environ",
        "/proc/self/cwd",
        "/proc/self/root",
        "/memfs",
        "/",
        "../..",
        "..",
        "../../../../etc/shadow",
    ],
)
def test_symlinks_wont_copy_data_from_outside_the_memfs(run: RunCode, target: str) -> None:
    result = run(f"import os; os.symlink({target!r}, 'escape'); os.symlink({target!r}, 'b')")
    assert result.returncode == 0, result.stdout
    assert result.files == []


def test_symlinks_through_a_linked_directory_wont_escape(run: RunCode) -> None:
    result = run(
        """
        import os
        os.symlink('/etc', 'etc')
        os.symlink('etc/shadow', 'shadow')
        os.symlink('../../..', 'up')
        os.symlink('up/etc/hostname', 'hostname')
        """
    )
    assert result.files == []


def test_symlinks_inside_the_memfs_are_followed(run: RunCode) -> None:
    result = run(
        """
        import os
        os.makedirs('dir')
        open('dir/data.txt', 'w').write('inside')
        os.symlink('dir/data.txt', 'link.txt')
        os.symlink('../dir/data.txt', 'dir/up_and_back.txt')
        """
    )
    assert {f.path: f.content for f in result.files} == {
        "dir/data.txt": b"inside",
        "dir/up_and_back.txt": b"inside",
        "link.txt": b"inside",
    }


def test_fifos_and_sockets_are_skipped_without_blocking(run: RunCode) -> None:
    result = run(
        """
        import os, socket
        os.mkfifo('fifo')
        sock = socket.socket(socket.AF_UNIX)
        sock.bind('sock')
        os.symlink('fifo', 'fifo_link')
        open('plain', 'w').write('ok')
        """
    )
    assert result.returncode == 0, result.stdout
    assert paths(result) == ["plain"]


def test_runs_cant_see_each_others_files(nsjail: NsJail) -> None:
    writer = "open('secret.txt', 'w').write('run A'); import time; time.sleep(2)"
    reader = (
        "import os, time; time.sleep(0.5)\n"
        "print(sorted(os.listdir('/home')), os.path.exists('/memfs'))"
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(nsjail.python3, ["-c", writer])
        b = pool.submit(nsjail.python3, ["-c", reader])
        result_a, result_b = a.result(), b.result()
    assert paths(result_a) == ["secret.txt"]
    assert result_b.stdout == "[] False\n"
    assert result_b.files == []


def test_the_skipped_files_list_is_capped_and_counts_the_rest(run: RunCode) -> None:
    code = """
    import os
    path = "/home/" + "/".join(["deep"] * 20)
    os.makedirs(path)
    for i in range(1000):
        open(f"{path}/.hidden{i:04}", "w").close()
    """
    result = run(code)
    assert result.returncode == 0
    assert len(result.files_skipped) == 100
    assert result.files_skipped_more == 900
    assert all(skipped.reason == "hidden" for skipped in result.files_skipped)
