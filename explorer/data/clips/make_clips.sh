#!/bin/bash
# How the bundled clips were made: Debian's espeak-ng speaks each sentence (voice, words per minute, gap between
# words in 10 ms units), and soundfile writes it as 16 kHz mono 16-bit FLAC, as Whisper hears it. Whisper base
# (this explorer's conversion and CTranslate2 alike) transcribes each one word for word; tests/test_speech.py checks.
set -e
cd "$(dirname "$0")"
speak() {  # voice, words per minute, word gap, name, sentence
  espeak-ng -v "$1" -s "$2" -g "$3" -w "/tmp/$4.wav" "$5"
  "${PYTHON:-python}" -c "import sys, soundfile; from explorer.data.audio import read_audio
a = read_audio('/tmp/$4.wav'); soundfile.write('$4.flac', a.samples, 16000, format='FLAC', subtype='PCM_16')"
  rm "/tmp/$4.wav"
}
speak en 120 4 english "Good morning. My name is Anna and I live in London."
speak de 120 4 german "Guten Morgen. Heute gehe ich mit meinem Freund in den Park."
speak fr 110 4 french "Bonjour, je m'appelle Marie et j'habite à Paris."
speak es 120 2 spanish "Buenos días. Me llamo Carlos y vivo en Madrid."
speak it 120 4 italian "Ciao, come stai? Io sto molto bene, grazie."
