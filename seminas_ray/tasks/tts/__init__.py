"""Text-to-speech task: SemiNAS on a Transformer-TTS search space, trained on LJSpeech or an offline eSpeak NG corpus."""
