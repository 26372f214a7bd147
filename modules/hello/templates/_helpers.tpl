{{/* Helpers are not supported by envboot's simple engine yet; this file is not emitted. */}}
