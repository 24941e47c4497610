"""Media servers (Jellyfin, Plex, Emby) that tell the service of new items and refresh them once their subtitles are written."""
