"""Lab bench: profiles, instrument drivers over VISA and a bench emulator."""
